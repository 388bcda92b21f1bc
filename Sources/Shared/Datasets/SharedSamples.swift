import Core
import Foundation

/// A task source that renders each sample once for several readers of the same stream:
/// phases that run side by side on one seed (a study's joint-training candidates draw
/// exactly the same samples, step for step) share the rendering.
///
/// A sample is kept until `readers` reads have taken it, within `byteLimit` bytes; past
/// that the oldest go first, and a reader that comes for one later renders it again. A
/// source is deterministic, so that copy has the same bits: the cache changes the time a
/// run takes, never its results. Errors are not kept. Thread-safe: a reader never renders a
/// sample another is rendering; given a meta-batch (`samples`), it renders another one
/// meanwhile.
public final class SharedSamples: TaskSource, @unchecked Sendable {
    public let base: TaskSource
    public let readers: Int
    public let byteLimit: Int

    private struct Key: Hashable {
        var task: Int, index: UInt64, seed: UInt64, support: Int, query: Int
    }
    private let condition = NSCondition()
    private var kept: [Key: (sample: TaskSample, reads: Int)] = [:]
    /// Samples a reader is rendering now: another reader of one waits for it.
    private var rendering: Set<Key> = []
    /// Keys in the order they were kept (some already taken by every reader).
    private var order: [Key] = []
    private var oldest = 0
    private var bytes = 0
    private var counts = (rendered: 0, shared: 0)

    /// Samples rendered, and reads served from the cache.
    public var statistics: (rendered: Int, shared: Int) {
        condition.lock()
        defer { condition.unlock() }
        return counts
    }

    public init(_ base: TaskSource, readers: Int, byteLimit: Int = 256 << 20) {
        precondition(readers >= 1 && byteLimit >= 0, "a shared source needs a reader and a non-negative limit")
        self.base = base
        self.readers = readers
        self.byteLimit = byteLimit
    }

    public var identity: DatasetIdentity { base.identity }
    public var imageShape: FeatureShape { base.imageShape }
    public var taskNames: [String] { base.taskNames }
    public var defaultSplit: TaskSplit { base.defaultSplit }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        try samples([TaskRef(task: task, index: index)], seed: seed, support: support, query: query)[0]
    }

    /// The samples of `refs`, in order. A reader takes what is kept, renders the first one
    /// nobody is rendering, and waits only when every one it still needs is being rendered
    /// by another: readers in step on one meta-batch render different samples at once.
    public func samples(_ refs: [TaskRef], seed: UInt64, support: Int, query: Int) throws(DataError) -> [TaskSample] {
        let keys = refs.map { Key(task: $0.task, index: $0.index, seed: seed, support: support, query: query) }
        var out = [TaskSample?](repeating: nil, count: refs.count)
        var needed = Array(refs.indices)
        condition.lock()
        defer { condition.unlock() }
        while !needed.isEmpty {
            var mine: Int?
            needed.removeAll { i in
                if let hit = take(keys[i]) {
                    out[i] = hit
                    return true
                }
                if mine == nil && !rendering.contains(keys[i]) { mine = i }
                return false
            }
            guard let i = mine else {
                if !needed.isEmpty { condition.wait() }
                continue
            }
            let key = keys[i]
            rendering.insert(key)
            condition.unlock()
            let result = Result { () throws(DataError) in
                try base.sample(task: key.task, index: key.index, seed: seed, support: support, query: query)
            }
            condition.lock()
            rendering.remove(key)
            counts.rendered += 1
            condition.broadcast()
            let sample = try result.get()
            keep(key, sample)
            out[i] = sample
            needed.removeAll { $0 == i }
        }
        return out.map { $0! }
    }

    private static func size(_ s: TaskSample) -> Int {
        (s.supportImages.count + s.supportMasks.count + s.queryImages.count + s.queryMasks.count) * MemoryLayout<Float>.stride
    }

    /// A kept sample, counting the read (under the lock).
    private func take(_ key: Key) -> TaskSample? {
        guard var entry = kept[key] else { return nil }
        counts.shared += 1
        entry.reads += 1
        if entry.reads >= readers {
            kept[key] = nil
            bytes -= Self.size(entry.sample)
        } else {
            kept[key] = entry
        }
        return entry.sample
    }

    /// Keeps a sample just rendered for the other readers, oldest out past the limit (under
    /// the lock).
    private func keep(_ key: Key, _ sample: TaskSample) {
        let size = Self.size(sample)
        guard readers > 1, size <= byteLimit else { return }
        kept[key] = (sample, 1)
        order.append(key)
        bytes += size
        while bytes > byteLimit, oldest < order.count {
            if let evicted = kept.removeValue(forKey: order[oldest]) { bytes -= Self.size(evicted.sample) }
            oldest += 1
        }
        // Keys every reader has taken leave the front; the array is compacted now and then.
        while oldest < order.count, kept[order[oldest]] == nil { oldest += 1 }
        if oldest > 1024 && oldest * 2 > order.count {
            order.removeFirst(oldest)
            oldest = 0
        }
    }
}
