import ArgumentParser
import Cluster
import Core
import Datasets
import Foundation
import Logging
import MetaLearning
import Training
import Service
import Wire

/// Runs a training run with the cluster options (shared by train, pretrain and demo).
func runTraining(spec: RunSpec, source: TaskSource, cluster: ClusterOptions, checkpointDir: String, checkpointEvery: Int,
                 metrics: String?, resume: Checkpoint?, initial: [Float]?, logger: Logger,
                 quiet: Bool = false, onStep: ((StepReport, TrainingRun) -> Void)? = nil,
                 onEvaluation: ((HeldOutScore) -> Void)? = nil) throws -> RunSummary {
    var outputs = RunOutputs(checkpointFolder: checkpointDir)
    outputs.checkpointEvery = checkpointEvery
    outputs.metricsPath = metrics
    outputs.runFile = RunFile.effective
    try startMetrics(cluster.metricsAddress, logger: logger)
    var launcher: LocalWorkers?
    guard (0...64).contains(cluster.prefetch) else { throw ValidationError("--prefetch must be between 0 and 64") }
    let backend: TaskBackend
    var distributed: DistributedBackend?
    if cluster.inProcess {
        guard cluster.threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        backend = InProcessBackend(threads: cluster.threads)
    } else {
        let security = try cluster.securityForCoordinator(logger: logger)
        if cluster.localWorkers > 0 {
            launcher = try LocalWorkers(count: cluster.localWorkers, threads: cluster.threads, keys: security?.local, logger: logger)
        }
        let d = DistributedBackend(endpoint: cluster.endpoint, minimumWorkers: max(cluster.minWorkers, cluster.localWorkers > 0 ? 1 : 0),
                                   security: security?.config, logger: logger)
        d.prefetch = cluster.prefetch
        guard (0...1).contains(cluster.verify) else { throw ValidationError("--verify takes a fraction in 0...1") }
        d.verifyFraction = cluster.verify
        guard (16...1 << 20).contains(cluster.memoryBudget) else { throw ValidationError("--memory-budget takes 16...1048576 MB") }
        d.memoryBudget = cluster.memoryBudget << 20
        distributed = d
        backend = d
    }
    defer { launcher?.stop() }
    let run = try TrainingRun(spec: spec, source: source, backend: backend, outputs: outputs, resume: resume, initial: initial, logger: logger)
    let progress = ProgressLine(total: spec.training.steps, batch: spec.training.metaBatch, quiet: quiet)
    run.onStep = { report, r in
        progress.step(report, workers: r.workerStatus)
        onStep?(report, r)
    }
    run.onEvaluation = { score in
        progress.note("held-out 5-shot Dice \(score.dice) at step \(score.step)")
        onEvaluation?(score)
    }
    distributed?.onStatus = { progress.note($0) }
    distributed?.onBound = { endpoint in
        do { try launcher?.start(endpoint: endpoint) } catch {
            logger.error("cannot start local workers: \(error)")
            launcher?.failedToStart(error)
        }
    }
    // On the default loopback endpoint only the local workers can ever connect: when none
    // is left, waiting would be forever.
    if let launcher, cluster.bind == nil {
        distributed?.abandonWhenIdle = { launcher.whyNoneCanCome }
    }
    let summary = try run.run()
    progress.finish()
    return summary
}

/// The process's Prometheus endpoint, started by the first run that asks for one.
nonisolated(unsafe) private var metricsEndpoint: MetricsEndpoint?

func startMetrics(_ address: String?, logger: Logger) throws {
    guard let address, metricsEndpoint == nil else { return }
    do { metricsEndpoint = try MetricsEndpoint(address: address, logger: logger) } catch { throw ValidationError("\(error)") }
}

/// Writes the effective configuration (`RunFile.effective`) as `folder/run.yaml`.
func writeRunFile(into folder: String) throws {
    guard let text = RunFile.effective else { return }
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try AtomicFile.write(Data(text.utf8), to: folder + "/run.yaml")
}
