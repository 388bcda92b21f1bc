import Core

/// Deterministic meta-batch and evaluation sampling: a pure function of the seed and the
/// step, so a resumed or distributed run draws exactly the same tasks.
public enum TaskSampler {
    /// The meta-batch of outer step `step`: tasks drawn uniformly from `pool` (with
    /// replacement), each with a fresh sample index.
    public static func metaBatch(step: Int, seed: UInt64, pool: [Int], size: Int) -> [TaskRef] {
        precondition(!pool.isEmpty && size > 0, "empty task pool or meta-batch")
        var rng = RandomStream(key: [seed, 0x6D65_7461, UInt64(step)])
        return (0..<size).map { _ in TaskRef(task: pool[rng.below(pool.count)], index: rng.next()) }
    }

    /// `perTask` evaluation instances of each task in `pool`, the same for every call with
    /// the same seed (so methods are compared on identical samples).
    public static func evaluation(seed: UInt64, pool: [Int], perTask: Int) -> [TaskRef] {
        pool.flatMap { task in
            (0..<perTask).map { i in
                var rng = RandomStream(key: [seed, 0x6576_616C, UInt64(task), UInt64(i)])
                return TaskRef(task: task, index: rng.next())
            }
        }
    }
}
