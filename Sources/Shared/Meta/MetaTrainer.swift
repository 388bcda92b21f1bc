import Foundation
import Logging

/// Settings of a meta-training run beyond the inner loop.
public struct TrainingConfig: Codable, Hashable, Sendable {
    public var meta: MetaConfig
    public var optimizer: Adam
    /// Tasks per outer step.
    public var metaBatch = 8
    /// Outer steps.
    public var steps = 1000
    public var seed: UInt64 = 0
    /// Initial-parameter seed (defaults to `seed`).
    public var initSeed: UInt64? = nil

    public init(meta: MetaConfig = MetaConfig(), optimizer: Adam = Adam(learningRate: 1e-3)) {
        self.meta = meta
        self.optimizer = optimizer
    }

    public func validate() throws(MetaConfigError) {
        try meta.validate()
        guard (1...4096).contains(metaBatch) else { throw .invalid("meta-batch must be in 1...4096") }
        guard steps >= 0 else { throw .invalid("steps must be non-negative") }
        guard optimizer.learningRate.isFinite, optimizer.learningRate > 0 else {
            throw .invalid("the meta learning rate must be positive")
        }
    }
}

/// What one outer step did.
public struct StepReport: Sendable, Codable {
    public var step: Int
    /// Mean meta-objective over the meta-batch.
    public var metaLoss: Float
    /// Mean query Dice after adaptation over the meta-batch.
    public var queryDice: Float
    /// Mean support loss before adaptation.
    public var supportLoss: Float
    /// Norm of the averaged meta-gradient before clipping.
    public var gradientNorm: Float
    public var order: MetaOrder
    public var seconds: Double
}

/// The averaged meta-gradient of a meta-batch: per-task gradients summed in task order, then
/// scaled by 1/n, so the result is the same whichever thread or machine computed each task.
public func averageInTaskOrder(_ gradients: [[Float]]) -> [Float] {
    precondition(!gradients.isEmpty, "no gradients to average")
    var sum = gradients[0]
    for g in gradients.dropFirst() {
        precondition(g.count == sum.count, "gradient size mismatch")
        for i in sum.indices { sum[i] += g[i] }
    }
    let scale = 1 / Float(gradients.count)
    for i in sum.indices { sum[i] *= scale }
    return sum
}

/// The outer loop of meta-training: the meta-parameters, Adam's state, the step counter and
/// the meta-batch sampling. It does not compute tasks: `MetaTrainer` does that on local
/// threads, the distributed coordinator on workers, and both apply results through here, so
/// the two give the same bits.
public final class OuterLoop {
    public let config: TrainingConfig
    public let layout: MetaLayout
    public let trainTasks: [Int]
    public private(set) var meta: [Float]
    public private(set) var optimizerState: Adam.State
    public private(set) var step = 0

    public init(config: TrainingConfig, trainTasks: [Int], initial: [Float]? = nil) throws {
        try config.validate()
        self.config = config
        layout = try MetaLayout(config: config.meta)
        guard !trainTasks.isEmpty else { throw MetaConfigError.invalid("no meta-train tasks in the split") }
        self.trainTasks = trainTasks
        if let initial {
            guard initial.count == layout.count else {
                throw MetaConfigError.invalid("initial parameters have \(initial.count) values, the model needs \(layout.count)")
            }
            meta = initial
        } else {
            meta = layout.initialValues(seed: config.initSeed ?? config.seed, innerLearningRate: config.meta.innerLearningRate)
        }
        optimizerState = Adam.State(count: layout.count)
    }

    /// Restores a checkpointed state (parameters, optimizer moments and step).
    public func restore(meta: [Float], optimizer: Adam.State, step: Int) {
        precondition(meta.count == layout.count && optimizer.m.count == layout.count, "state size mismatch")
        self.meta = meta
        optimizerState = optimizer
        self.step = step
    }

    public var done: Bool { step >= config.steps }

    /// The meta-batch of the current step.
    public var currentBatch: [TaskRef] {
        TaskSampler.metaBatch(step: step, seed: config.seed, pool: trainTasks, size: config.metaBatch)
    }

    /// Applies the averaged meta-gradient of a step's results (in task order) with Adam.
    @discardableResult
    public func apply(gradients: [[Float]], stats: [MetaLearner<Float>.Stats], seconds: Double) -> StepReport {
        let g = averageInTaskOrder(gradients)
        let norm = config.optimizer.update(parameters: &meta, gradient: g, state: &optimizerState)
        let n = Float(stats.count)
        let report = StepReport(
            step: step,
            metaLoss: stats.reduce(0) { $0 + $1.objective } / n,
            queryDice: stats.reduce(0) { $0 + $1.queryDice } / n,
            supportLoss: stats.reduce(0) { $0 + $1.supportLoss } / n,
            gradientNorm: norm, order: config.meta.effectiveOrder(atStep: step), seconds: seconds)
        step += 1
        return report
    }

    /// SHA-256 of the meta-parameter buffer (little-endian Float32).
    public var parameterHash: String { SHA256.hex(floats: meta) }
}

/// Single-process meta-training: the outer loop with per-task meta-gradients computed on a
/// pool of local threads. This is the `--in-process` reference the distributed run must
/// reproduce bit for bit, and what tests use.
public final class MetaTrainer {
    public let source: TaskSource
    public let split: TaskSplit
    public let outer: OuterLoop
    private let pool: ComputePool<MetaLearner<Float>, TaskRef, Result<TaskResult, DataError>>

    /// One task's output.
    public struct TaskResult: Sendable {
        public var gradient: [Float]
        public var stats: MetaLearner<Float>.Stats
    }

    public init(config: TrainingConfig, source: TaskSource, split: TaskSplit? = nil, threads: Int = 1,
                initial: [Float]? = nil) throws {
        guard source.imageShape == config.meta.model.input else {
            throw MetaConfigError.invalid("the model input \(config.meta.model.input) does not match the dataset's images \(source.imageShape)")
        }
        self.source = source
        self.split = split ?? source.defaultSplit
        outer = try OuterLoop(config: config, trainTasks: self.split.partition(source.taskNames).train, initial: initial)
        let metaConfig = config.meta
        pool = try ComputePool(threads: threads) { _ in try MetaLearner<Float>(config: metaConfig) }
    }

    public var config: TrainingConfig { outer.config }
    public var meta: [Float] { outer.meta }
    public var step: Int { outer.step }
    public var parameterHash: String { outer.parameterHash }

    /// Computes the meta-gradients of `tasks` at the current meta-parameters.
    public func computeTasks(_ tasks: [TaskRef], atStep s: Int) -> [Result<TaskResult, DataError>] {
        let meta = outer.meta, source = self.source, config = outer.config
        return pool.run(tasks) { learner, ref, _ in
            Self.compute(learner: learner, meta: meta, ref: ref, step: s, source: source, config: config)
        }
    }

    /// One task's meta-gradient: the unit of work a worker thread runs.
    public static func compute(learner: MetaLearner<Float>, meta: [Float], ref: TaskRef, step: Int,
                               source: TaskSource, config: TrainingConfig) -> Result<TaskResult, DataError> {
        do {
            let sample = try source.sample(task: ref.task, index: ref.index, seed: config.seed,
                                           support: config.meta.supportShots, query: config.meta.queryShots)
            var g = [Float](repeating: 0, count: meta.count)
            let stats = meta.withUnsafeBufferPointer { m in
                g.withUnsafeMutableBufferPointer { learner.metaGradient(meta: m.baseAddress!, task: sample, step: step, into: $0.baseAddress!) }
            }
            return .success(TaskResult(gradient: g, stats: stats))
        } catch {
            return .failure(error)
        }
    }

    /// Runs one outer step in this process.
    @discardableResult
    public func runStep() throws(DataError) -> StepReport {
        let start = DispatchTime.now().uptimeNanoseconds
        var results: [TaskResult] = []
        for r in computeTasks(outer.currentBatch, atStep: outer.step) { results.append(try r.get()) }
        return outer.apply(gradients: results.map(\.gradient), stats: results.map(\.stats),
                           seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
