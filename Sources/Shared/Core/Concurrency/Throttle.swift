import Foundation

/// Rate-limits progress lines and estimates the time left. Thread-safe.
public final class Throttle: @unchecked Sendable {
    public let every: Double
    private let clock = MonotonicClock()
    private var last = -1e9
    private let lock = NSLock()

    /// At most one line every `every` seconds.
    public init(every: Double) { self.every = every }

    /// Whether a line is due now (and, if so, that one is being written).
    public func due() -> Bool {
        lock.withLock {
            guard clock.now - last >= every else { return false }
            last = clock.now
            return true
        }
    }

    /// Seconds left for `total` units when `done` took the time since this throttle began.
    public func eta(done: Int, total: Int) -> Double { done > 0 ? clock.now / Double(done) * Double(total - done) : 0 }
}
