import Foundation

/// Where a network's time goes: wall time per node and pass, and the part of it spent in
/// matrix products (with their arithmetic), for `bench engine --profile`.
///
/// A profile records only while it is `active` on the calling thread's network and only for
/// single-threaded measurement: attach it with `Network.profile`, run, read `entries`.
public final class EngineProfile: @unchecked Sendable {
    /// The passes the engine runs.
    public enum Pass: String, CaseIterable, Sendable {
        case forward, backward, forwardTangent = "forward tangent", backwardTangent = "backward tangent", loss
    }

    public struct Key: Hashable, Sendable {
        public var node: Int
        public var pass: Pass
    }

    public struct Entry: Sendable {
        public var seconds = 0.0
        public var gemmSeconds = 0.0
        /// Arithmetic of the matrix products (2mnk each).
        public var gemmFlops = 0.0
        public var calls = 0
        public init() {}
    }

    public private(set) var entries: [Key: Entry] = [:]
    private var gemmSeconds = 0.0, gemmFlops = 0.0

    public init() {}

    /// The profile the matrix products report to (set while a profiled network runs).
    nonisolated(unsafe) static var active: EngineProfile?

    @inline(__always)
    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    /// Times `body` as node `node`'s pass `pass`.
    func measure(node: Int, pass: Pass, _ body: () -> Void) {
        let outer = Self.active
        Self.active = self
        gemmSeconds = 0
        gemmFlops = 0
        let start = Self.now()
        body()
        let elapsed = Self.now() - start
        var e = entries[Key(node: node, pass: pass)] ?? Entry()
        e.seconds += elapsed
        e.gemmSeconds += gemmSeconds
        e.gemmFlops += gemmFlops
        e.calls += 1
        entries[Key(node: node, pass: pass)] = e
        Self.active = outer
    }

    /// Called by the matrix product wrappers.
    @inline(__always)
    func gemm(m: Int, n: Int, k: Int, _ body: () -> Void) {
        let start = Self.now()
        body()
        gemmSeconds += Self.now() - start
        gemmFlops += 2 * Double(m) * Double(n) * Double(k)
    }
}
