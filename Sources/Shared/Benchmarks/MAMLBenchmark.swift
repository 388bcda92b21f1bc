import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Training

/// Meta-gradient throughput: `tasks` freshly generated tasks of `dataset` on `threads` task
/// threads in this process, after one warm-up task per thread. Task generation is included,
/// as on a worker. The default configuration is W1 (docs/WORKLOADS.md: 64x64, K = Q = 5,
/// 5 inner steps at 0.01); at 128 px it is W2; `universeMap` is the regime map's most-run
/// configuration.
public struct MAMLBenchmark {
    public var config: TrainingConfig
    /// "synthetic" or "universe".
    public var dataset: String
    public var threads: Int
    public var tasks: Int

    public init(config: TrainingConfig, dataset: String = "synthetic", threads: Int, tasks: Int) {
        self.config = config
        self.dataset = dataset
        self.threads = threads
        self.tasks = tasks
    }

    /// W1's model and task shape (W2 at `imageSize` 128) with the given recipe.
    public static func workload(imageSize: Int = 64, baseChannels: Int = 16, order: MetaOrder, headOnlyInnerLoop: Bool = false,
                                prototypeHead: Bool = false) -> TrainingConfig {
        var config = TrainingConfig()
        config.meta = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize, baseChannels: baseChannels).spec)
        config.meta.order = order
        config.meta.headOnlyInnerLoop = headOnlyInnerLoop
        config.meta.prototypeHead = prototypeHead
        config.seed = 1
        return config
    }

    /// What one line names: the model, the recipe, the threads and the kernels.
    public var description: String {
        let m = config.meta, input = m.model.input
        let model = m.model == UNetConfig.w1.spec ? "W1" : input.height == 128 && m.model == UNetConfig(height: 128, width: 128).spec
            ? "W2" : "U-Net \(input.height)x\(input.width)"
        let recipe = [m.order.rawValue + " order", m.headOnlyInnerLoop ? "head-only inner loop (ANIL)" : nil,
                      m.prototypeHead ? "prototype head" : nil, "\(m.innerSteps) inner steps"].compactMap { $0 }
        return "# \(model) meta-gradients on \(dataset) tasks, \(recipe.joined(separator: ", ")), \(threads) thread(s), 1 process, \(BLAS.kernelDescription)"
    }

    /// Returns tasks per second.
    public func run() throws -> Double {
        try config.validate()
        var options = VolumeOptions()
        options.size = config.meta.model.input.height
        let (dataset, source) = try DatasetSpec.open(self.dataset, options: options, logger: Logger(label: "medmaml.bench"))
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: source.defaultSplit,
                           evaluation: EvaluationSpec())
        let pool = try ComputePool<TaskExecutor, TaskRef, Result<(gradient: [Float], stats: TaskStatistics), DataError>>(threads: threads) { _ in
            try TaskExecutor(run: spec, source: source)
        }
        let meta = try MetaLayout(config: config.meta).initialValues(seed: 1, innerLearningRate: config.meta.innerLearningRate)
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
