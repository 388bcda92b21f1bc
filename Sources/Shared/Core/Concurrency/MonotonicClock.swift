import Foundation

/// Seconds since an arbitrary start, monotonic (immune to wall-clock changes).
public struct MonotonicClock: Sendable {
    private let start = DispatchTime.now().uptimeNanoseconds
    public init() {}
    public var now: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}
