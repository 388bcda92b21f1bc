import Core
import Datasets
import Foundation
import Logging
import MetaLearning
import Training

/// Runs a training run on the backend its `ClusterSettings` ask for: threads in this process,
/// or a coordinator socket with local worker processes and/or workers that connect. Every
/// command that trains (`train`, `pretrain`, `study`, `map`, `demo`) goes through `run`, so they
/// share one launch path.
public struct TrainingLauncher {
    public var settings: ClusterSettings
    /// The effective configuration of the command (YAML), stored in checkpoints.
    public var runFile: String?
    public let logger: Logger

    public init(settings: ClusterSettings, runFile: String?, logger: Logger) {
        self.settings = settings
        self.runFile = runFile
        self.logger = logger
    }

    /// What a run writes and reports besides its parameters.
    public struct Outputs {
        public var checkpointFolder: String
        public var checkpointEvery: Int
        public var metricsPath: String?
        /// Progress lines: one per step and status notes (nil: stderr).
        public var progress: (@Sendable (String) -> Void)?
        public var quiet = false

        public init(checkpointFolder: String, checkpointEvery: Int, metricsPath: String? = nil) {
            self.checkpointFolder = checkpointFolder
            self.checkpointEvery = checkpointEvery
            self.metricsPath = metricsPath
        }
    }

    /// Trains `spec` on `source` from `resume` or `initial` (random when both are nil), with
    /// `onStep` called on the run's thread after every step.
    public func run(spec: RunSpec, source: TaskSource, outputs: Outputs, resume: Checkpoint?, initial: [Float]?,
                    onStep: ((StepReport, TrainingRun) -> Void)? = nil,
                    onEvaluation: ((HeldOutScore) -> Void)? = nil) throws -> RunSummary {
        try settings.validate()
        // The run's numerics, before this process computes anything of it.
        try spec.numerics.resolved().apply()
        var runOutputs = RunOutputs(checkpointFolder: outputs.checkpointFolder)
        runOutputs.checkpointEvery = outputs.checkpointEvery
        runOutputs.metricsPath = outputs.metricsPath
        runOutputs.runFile = runFile
        var launcher: LocalWorkers?
        let backend: TaskBackend
        var distributed: DistributedBackend?
        if settings.inProcess {
            backend = InProcessBackend(threads: settings.threads)
        } else {
            let security = try settings.securityForCoordinator(logger: logger)
            if settings.localWorkers > 0 {
                launcher = try LocalWorkers(count: settings.localWorkers, threads: settings.threads, keys: security?.local,
                                            logLevel: settings.workerLogLevel, logger: logger)
            }
            let d = DistributedBackend(endpoint: settings.endpoint,
                                       minimumWorkers: max(settings.minimumWorkers, settings.localWorkers > 0 ? 1 : 0),
                                       security: security?.config, logger: logger)
            d.prefetch = settings.prefetch
            d.verifyFraction = settings.verify
            d.heartbeatInterval = settings.heartbeat
            d.memoryBudget = settings.memoryBudgetMB << 20
            distributed = d
            backend = d
        }
        defer { launcher?.stop() }
        let run = try TrainingRun(spec: spec, source: source, backend: backend, outputs: runOutputs, resume: resume, initial: initial,
                                  logger: logger)
        let progress = ProgressLine(total: spec.training.steps, batch: spec.training.metaBatch, quiet: outputs.quiet, sink: outputs.progress)
        run.onStep = { report, r in
            progress.step(report, workers: r.workerStatus)
            onStep?(report, r)
        }
        run.onEvaluation = { score in
            progress.note("held-out 5-shot Dice \(score.dice) at step \(score.step)")
            onEvaluation?(score)
        }
        distributed?.onStatus = { progress.note($0) }
        distributed?.onBound = { [logger] endpoint in
            do { try launcher?.start(endpoint: endpoint) } catch {
                logger.error("cannot start local workers: \(error)")
                launcher?.failedToStart(error)
            }
        }
        // On the default loopback endpoint only the local workers can ever connect: when none
        // is left, waiting would be forever; and a local worker that lost its connection is
        // never restarted (one alive exits with this process), so none is waited for at the end.
        if let launcher, settings.bind == nil {
            distributed?.abandonWhenIdle = { launcher.whyNoneCanCome }
            distributed?.waitsForLostWorkers = false
        }
        return try run.run()
    }
}
