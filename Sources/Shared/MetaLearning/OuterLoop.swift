import Core

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
/// the meta-batch sampling. It does not compute tasks: whoever computes them (threads in
/// this process, or workers) applies the results through here, so every way of computing
/// gives the same bits.
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
    ///
    /// The state changes only if everything stays finite: a non-finite task gradient, average,
    /// Adam moment or parameter throws `Divergence` and leaves the parameters, Adam's state
    /// and the step as they were (the last good state, fit for a checkpoint).
    @discardableResult
    public func apply(gradients: [[Float]], stats: [TaskStatistics], seconds: Double) throws(Divergence) -> StepReport {
        if let bad = gradients.firstIndex(where: { !$0.allSatisfy(\.isFinite) }) {
            throw Divergence(step: step, what: "the meta-gradient of task \(bad) of the meta-batch is non-finite")
        }
        let g = averageInTaskOrder(gradients)
        guard g.allSatisfy(\.isFinite) else { throw Divergence(step: step, what: "the averaged meta-gradient overflows") }
        var newMeta = meta, newState = optimizerState
        let norm = config.optimizer.update(parameters: &newMeta, gradient: g, state: &newState)
        guard newState.m.allSatisfy(\.isFinite), newState.v.allSatisfy(\.isFinite), newMeta.allSatisfy(\.isFinite) else {
            throw Divergence(step: step, what: "Adam's update overflows (gradient norm \(norm))")
        }
        meta = newMeta
        optimizerState = newState
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

    /// Training diverged: a step would have made the parameters or Adam's state non-finite.
    public struct Divergence: Error, CustomStringConvertible, Sendable {
        /// The outer step (0-based) that was not applied.
        public var step: Int
        public var what: String
        public var description: String {
            "\(what) at step \(step + 1): training diverged; lower --meta-lr or use --clip-norm (the last good state is checkpointed)"
        }
    }

    /// SHA-256 of the meta-parameter buffer (little-endian Float32).
    public var parameterHash: String { SHA256.hex(floats: meta) }
}
