import Core
import Datasets
import Foundation
import MetaLearning
import Training

/// W1 meta-gradient throughput: `tasks` freshly generated 64x64 tasks (K = Q = 5, 5 inner
/// steps, lr 0.01) on `threads` task threads in this process, after one warm-up task per
/// thread. Task generation is included, as on a worker. With `headOnlyInnerLoop`, ANIL on
/// the same tasks; with `prototypeHead`, Proto-MAML (or Proto-ANIL).
public struct MAMLBenchmark {
    public var order: MetaOrder
    public var threads: Int
    public var tasks: Int
    public var headOnlyInnerLoop: Bool
    public var prototypeHead: Bool

    public init(order: MetaOrder, threads: Int, tasks: Int, headOnlyInnerLoop: Bool = false, prototypeHead: Bool = false) {
        self.order = order
        self.threads = threads
        self.tasks = tasks
        self.headOnlyInnerLoop = headOnlyInnerLoop
        self.prototypeHead = prototypeHead
    }

    /// Returns tasks per second.
    public func run() throws -> Double {
        var config = TrainingConfig()
        config.meta.order = order
        config.meta.headOnlyInnerLoop = headOnlyInnerLoop
        config.meta.prototypeHead = prototypeHead
        try config.validate()
        config.seed = 1
        let source = SyntheticFamily(size: 64)
        let dataset = DatasetSpec(kind: .synthetic, name: "synthetic", path: "synthetic", options: VolumeOptions(), identity: source.identity)
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: source.defaultSplit,
                           evaluation: EvaluationSpec())
        let pool = try ComputePool<TaskExecutor, TaskRef, Result<(gradient: [Float], stats: TaskStatistics), DataError>>(threads: threads) { _ in
            try TaskExecutor(run: spec, source: source)
        }
        let meta = try MetaLayout(config: config.meta).initialValues(seed: 1, innerLearningRate: 0.01)
        let refs = (0..<(tasks + threads)).map { TaskRef(task: $0 % source.taskNames.count, index: UInt64($0)) }
        func run(_ batch: [TaskRef]) throws {
            for r in pool.run(batch, { executor, ref, _ in executor.metaGradient(meta: meta, ref: ref, step: 0) }) { _ = try r.get() }
        }
        try run(Array(refs.prefix(threads)))
        let start = DispatchTime.now().uptimeNanoseconds
        try run(Array(refs.dropFirst(threads)))
        return Double(tasks) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
