import Foundation
import Wire

/// The tasks a worker has received and not started, and the parameters they need: filled by
/// the I/O thread, emptied by the compute threads, which block in `next()` until there is
/// work. Thread-safe.
public final class WorkQueue: @unchecked Sendable {
    public struct Item: Sendable {
        public var generation: Int
        public var batch: UInt64
        public var task: Wire.Task
        public init(generation: Int, batch: UInt64, task: Wire.Task) {
            self.generation = generation
            self.batch = batch
            self.task = task
        }
    }

    private let condition = NSCondition()

    public init() {}
    private var items: [Item] = []
    private var parameters: [UInt64: [Float]] = [:]
    private var stopping = false

    /// Parameters of `batch`. The coordinator runs one batch at a time, so tasks still queued
    /// from another batch (copies finished elsewhere) are stale and dropped. The parameters
    /// of the two newest batches are kept (a training batch and the evaluation after it).
    public func store(batch: UInt64, _ values: [Float]) {
        condition.withLock {
            items.removeAll { $0.batch != batch }
            parameters[batch] = values
            for old in parameters.keys.sorted().dropLast(2) where old != batch { parameters[old] = nil }
        }
    }

    public func enqueue(_ item: Item) {
        condition.withLock {
            items.append(item)
            condition.signal()
        }
    }

    public func clear() { condition.withLock { items.removeAll() } }

    /// Wakes every waiting thread; `next()` returns nil from now on.
    public func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    /// The oldest queued task and its batch's parameters (nil if they never arrived), or nil
    /// once stopped. Blocks while the queue is empty.
    public func next() -> (Item, [Float]?)? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !stopping { condition.wait() }
        if stopping { return nil }
        let item = items.removeFirst()
        return (item, parameters[item.batch])
    }

    public var count: Int { condition.withLock { items.count } }
}
