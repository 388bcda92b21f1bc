import Core
import Foundation

/// Rate-limits progress lines and estimates the time left.
final class Throttle: @unchecked Sendable {
    let every: Double
    let clock = MonotonicClock()
    var last = -1e9
    let lock = NSLock()
    init(every: Double) { self.every = every }
    func due() -> Bool {
        lock.withLock {
            guard clock.now - last >= every else { return false }
            last = clock.now
            return true
        }
    }
    func eta(done: Int, total: Int) -> Double { done > 0 ? clock.now / Double(done) * Double(total - done) : 0 }
}
