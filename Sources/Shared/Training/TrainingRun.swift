import Core
import Datasets
import Evaluation
import Foundation
import Logging
import MetaLearning

/// One meta-training run from start (or a checkpoint) to the last step. The backend computes
/// the tasks (threads in this process, or workers); the run samples the meta-batches,
/// averages the per-task meta-gradients in task order, applies Adam, evaluates on held-out
/// tasks, writes metrics and checkpoints. Every backend therefore ends with bitwise-identical
/// parameters.
public final class TrainingRun: @unchecked Sendable {
    public let spec: RunSpec
    public let source: TaskSource
    public let outputs: RunOutputs
    public let outer: OuterLoop
    public let backend: TaskBackend
    public let logger: Logger
    /// The tasks the held-out evaluations during training score.
    let heldOut: [Int]
    private let metrics: MetricsLog?
    private let monitor: RunMetrics
    /// Called on the run's thread after every step and evaluation (progress lines, plots).
    public var onStep: ((StepReport, TrainingRun) -> Void)?
    public var onEvaluation: ((HeldOutScore) -> Void)?
    public private(set) var evaluations: [HeldOutScore] = []
    public private(set) var reports: [StepReport] = []

    public init(spec: RunSpec, source: TaskSource, backend: TaskBackend, outputs: RunOutputs,
                resume: Checkpoint? = nil, initial: [Float]? = nil, logger: Logger) throws {
        guard source.imageShape == spec.training.meta.model.input else {
            throw MetaConfigError.invalid("the model input \(spec.training.meta.model.input) does not match the dataset's images \(source.imageShape)")
        }
        self.spec = spec
        self.source = source
        self.backend = backend
        self.outputs = outputs
        self.logger = logger
        monitor = RunMetrics(run: spec.runID)
        let partition = spec.partition(source)
        // Progress is watched on meta-validation tasks when the split has them: the
        // meta-test tasks are for the final report only.
        heldOut = partition.validation.isEmpty ? partition.test : partition.validation
        outer = try OuterLoop(config: spec.training, trainTasks: partition.train, initial: initial)
        if let resume {
            outer.restore(meta: resume.meta, optimizer: resume.optimizer, step: resume.step)
        }
        metrics = outputs.metricsPath.map { MetricsLog(path: $0, logger: logger) }
        // A resumed run rewrites the steps after its checkpoint: drop their old lines.
        if let resume { metrics?.truncate(after: resume.step) }
        monitor.totalSteps.record(spec.training.steps)
        monitor.step.record(outer.step)
    }

    /// Workers and threads computing, for progress lines.
    public var workerStatus: (workers: Int, threads: Int) { backend.status }

    // MARK: Running

    /// Runs to the last step (or a stop signal), checkpoints, and writes final.safetensors
    /// when the run is complete. When the run cannot go on (training diverged, a task cannot
    /// be computed anywhere), the last good state is checkpointed before the error is thrown.
    ///
    /// The backend is finished (workers told the run is over) only once the state is on disk:
    /// a coordinator that dies in between is restarted with `--resume` by its batch system and
    /// must find the run as its workers were told it ended, not a few steps earlier with
    /// every worker gone.
    public func run() throws -> RunSummary {
        let lock = try FolderLock(folder: outputs.checkpointFolder, purpose: "a training run's checkpoints")
        defer { withExtendedLifetime(lock) {} }
        var stopped: Int32?
        do {
            stopped = try loop()
        } catch {
            logger.error("the run cannot go on; checkpointing the last good state", metadata: ["meta.step": "\(outer.step)", "error": "\(error)"])
            if error is OuterLoop.Divergence { monitor.diverged.record(1) }
            do { try checkpoint() } catch let checkpointError {
                logger.error("cannot write the checkpoint", metadata: ["error": "\(checkpointError)"])
            }
            backend.finish()
            throw error
        }
        if stopped == nil {
            defer { backend.finish() }
            try checkpoint()
            try writeFinal()
        } else {
            try checkpoint()
        }
        return RunSummary(finalParameters: outer.meta, finalHash: outer.parameterHash, steps: outer.step,
                          stoppedBySignal: stopped, evaluations: evaluations, reports: reports)
    }

    /// The steps; returns the signal that stopped them, if any.
    private func loop() throws -> Int32? {
        guard try backend.start(self) else { return StopSignal.received }
        while !outer.done {
            if let sig = StopSignal.received { return sig }
            let clock = MonotonicClock()
            let jobs = outer.currentBatch.map { TaskJob(kind: .metaGradient, ref: $0) }
            guard let outcomes = try backend.compute(jobs, parameters: outer.meta, phase: .training, step: outer.step) else {
                return StopSignal.received
            }
            try finishStep(outcomes, seconds: clock.now)
            if evaluationDue {
                guard let scores = try backend.compute(evaluationJobs, parameters: outer.meta, phase: .evaluation, step: outer.step)
                else { return StopSignal.received }
                recordEvaluation(scores)
            }
        }
        return nil
    }

    // MARK: Steps, evaluation, checkpoints

    private func finishStep(_ outcomes: [TaskOutcome], seconds: Double) throws {
        let report = try outer.apply(gradients: outcomes.map { $0.gradient! }, stats: outcomes.map(\.stats), seconds: seconds)
        reports.append(report)
        monitor.record(report, metaBatch: spec.training.metaBatch, stepsDone: outer.step)
        onStep?(report, self)
        if outputs.checkpointEvery > 0 && outer.step % outputs.checkpointEvery == 0 {
            // The previous checkpoint stays (writes are atomic): say why, and go on training.
            do { try checkpoint() } catch {
                logger.error("cannot write a checkpoint; the previous one is kept", metadata: ["meta.step": "\(outer.step)", "error": "\(error)"])
            }
        }
        if !evaluationDue { metrics?.append(MetricsRecord(report, metaBatch: spec.training.metaBatch, workers: workerStatus.workers)) }
    }

    private var evaluationDue: Bool {
        spec.evaluation.every > 0 && !heldOut.isEmpty && (outer.step % spec.evaluation.every == 0 || outer.done)
    }

    /// The held-out instances every evaluation of this run scores.
    private var evaluationJobs: [TaskJob] {
        TaskSampler.evaluation(seed: spec.evaluation.seed, pool: heldOut, perTask: spec.evaluation.perTask)
            .map { TaskJob(kind: .evaluate, ref: $0) }
    }

    private func recordEvaluation(_ outcomes: [TaskOutcome]) {
        var byTask: [String: [Double]] = [:]
        for (job, o) in zip(evaluationJobs, outcomes) { byTask[source.taskNames[job.ref.task], default: []].append(Double(o.stats.queryDice)) }
        let score = HeldOutScore(step: outer.step, dice: MeanCI(outcomes.map { Double($0.stats.queryDice) }),
                                 perTask: byTask.mapValues { MeanCI($0) })
        evaluations.append(score)
        monitor.heldOut(score.dice.mean)
        onEvaluation?(score)
        logger.info("held-out evaluation", metadata: ["meta.step": "\(outer.step)", "dice": "\(score.dice)"])
        if let report = reports.last {
            metrics?.append(MetricsRecord(report, metaBatch: spec.training.metaBatch, workers: workerStatus.workers, heldOut: score.dice))
        }
    }

    /// Writes a checkpoint of the current state (between steps, so always consistent).
    public func checkpoint() throws {
        let path = outputs.checkpointFolder + "/" + Checkpoint.fileName(step: outer.step)
        var checkpoint = Checkpoint(run: spec, step: outer.step, meta: outer.meta, optimizer: outer.optimizerState)
        checkpoint.runFile = outputs.runFile
        try checkpoint.write(to: path)
        Checkpoint.prune(outputs.checkpointFolder, keep: outputs.keepCheckpoints)
        logger.debug("checkpoint written", metadata: ["path": "\(path)"])
    }

    /// `final.safetensors`: the parameters by name (a PyTorch state dict) and the run's spec.
    private func writeFinal() throws {
        try TrainedModel.write(outer.meta, layout: outer.layout, run: spec, step: outer.step, runFile: outputs.runFile,
                               to: outputs.checkpointFolder + "/final.safetensors")
    }
}
