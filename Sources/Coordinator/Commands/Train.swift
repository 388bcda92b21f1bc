import ArgumentParser
import Foundation
import Logging
import Shared

/// Model and meta-learning flags shared by `train`, `pretrain` and `demo`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Outer (meta) steps.") var steps = 1000
    @Option(help: "Tasks per meta-batch.") var metaBatch = 8
    @Option(help: "Seed of initialisation and task sampling.") var seed: UInt64 = 0
    @Option(help: "Meta-gradient: second (exact MAML), first (FOMAML) or reptile.") var order: MetaOrder = .second
    @Option(help: "Inner SGD steps.") var innerSteps = 5
    @Option(help: "Inner learning rate (initial value when learned).") var innerLr: Float = 0.01
    @Option(help: "Outer Adam learning rate.") var metaLr: Float = 1e-3
    @Option(help: "Support images per task (K).") var support = 5
    @Option(help: "Query images per task (Q).") var query = 5
    @Flag(help: "MAML++ LSLR: learn one inner rate per parameter tensor and step.") var learnedInnerRates = false
    @Flag(help: "MAML++ multi-step loss.") var multiStepLoss = false
    @Option(help: "Outer steps over which the multi-step loss anneals.") var multiStepAnnealSteps = 100
    @Option(help: "MAML++ derivative-order annealing: first order for this many outer steps.") var firstOrderSteps = 0
    @Option(help: "Clip the meta-gradient to this global norm.") var clipNorm: Float?
    @Flag(help: "Cosine decay of the meta learning rate to zero over the run.") var cosine = false
    @Option(help: "U-Net depth (poolings).") var depth = 2
    @Option(help: "U-Net channels of the first level.") var baseChannels = 16
    @Option(help: "GroupNorm groups.") var groups = 4

    func config(imageSize: Int) throws -> TrainingConfig {
        var c = TrainingConfig()
        c.meta = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize, depth: depth,
                                              baseChannels: baseChannels, groups: groups).spec)
        c.meta.supportShots = support
        c.meta.queryShots = query
        c.meta.innerSteps = innerSteps
        c.meta.innerLearningRate = innerLr
        c.meta.learnedInnerRates = learnedInnerRates
        c.meta.order = order
        c.meta.firstOrderSteps = firstOrderSteps
        c.meta.multiStepLoss = multiStepLoss
        c.meta.multiStepAnnealSteps = multiStepAnnealSteps
        c.optimizer = Adam(learningRate: metaLr)
        c.optimizer.clipNorm = clipNorm
        if cosine { c.optimizer.cosineSteps = steps }
        c.metaBatch = metaBatch
        c.steps = steps
        c.seed = seed
        try c.validate()
        return c
    }
}

/// Where and how the work runs: flags shared by `train`, `pretrain` and `demo`.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Coordinator endpoint to bind (default tcp://*:5555; loopback with an ephemeral port for --local-workers).")
    var bind: String?
    @Option(help: "Wait for this many workers before the first step.") var minWorkers = 1
    @Option(help: "Start this many worker processes on this host (stopped on exit).") var localWorkers = 0
    @Option(help: "Compute threads per local worker, or task threads with --in-process.") var threads = 1
    @Flag(help: "Run every task in this process, with no sockets.") var inProcess = false
    @Option(help: "Tasks per worker thread sent ahead of need, to hide network latency (0: none).") var prefetch = Scheduler.Settings.defaultPrefetch
    @Option(help: "CURVE secret key file of the coordinator (turns encryption and authentication on).") var secretKey: String?
    @Option(help: "Authorized worker public keys: a folder of .pub files or a file with one key per line.") var authorizedKeys: String?
    @Flag(help: "Allow unencrypted, unauthenticated traffic on a non-loopback address.") var insecure = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level = .info

    var endpoint: String { bind ?? (localWorkers > 0 ? "tcp://127.0.0.1:0" : "tcp://*:5555") }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Meta-train on a dataset, with workers over ZeroMQ or in this process.",
        discussion: """
            The defaults train W1 (see W1.md) on the built-in synthetic family. Prints \
            `final_params_sha256 <hex>` on stdout at the end; final.safetensors and checkpoints \
            go to --checkpoint-dir.
            """)

    @Option(help: "\"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.") var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Folder for checkpoints, final.safetensors and metrics.") var checkpointDir = "checkpoints"
    @Option(help: "Checkpoint every N steps (0: only on SIGINT/SIGTERM and at the end).") var checkpointEvery = 50
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
    @Option(help: "Start from these parameters (a checkpoint or final.safetensors, e.g. from pretrain).") var initFrom: String?
    @Option(help: "Evaluate on held-out tasks every N steps (0: never).") var evalEvery = 0
    @Option(help: "Sampled instances per held-out task in each evaluation.") var evalPerTask = 4
    @Option(help: "Append one JSON object per step to this file.") var metrics: String?

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        var options = try data.volumeOptions()
        let (datasetSpec, source) = try DatasetSpec.open(dataset, options: options, logger: logger)
        options = datasetSpec.options
        var config = try training.config(imageSize: data.imageSize)
        var spec = RunSpec(runID: .random(), training: config, dataset: datasetSpec, split: data.split(for: source),
                           evaluation: { var e = EvaluationSpec(); e.every = evalEvery; e.perTask = evalPerTask
                                         e.support = training.support; e.query = training.query; return e }())
        var checkpoint: Checkpoint?
        if resume, let path = Checkpoint.newest(in: checkpointDir) {
            checkpoint = try Checkpoint.read(path: path)
            spec = checkpoint!.run
            config = spec.training
            logger.notice("resuming run \(spec.runID) at step \(checkpoint!.step) from \(path); its configuration replaces the command line's")
            guard spec.dataset.identity == datasetSpec.identity else {
                throw ValidationError("the dataset differs from the checkpoint's (fingerprint \(datasetSpec.identity.fingerprint.prefix(16)) vs \(spec.dataset.identity.fingerprint.prefix(16)))")
            }
        } else if resume {
            logger.notice("no checkpoint in \(checkpointDir): starting a new run")
        }
        var initial: [Float]?
        if let path = initFrom, checkpoint == nil {
            initial = try InitialParameters.load(path, layout: MetaLayout(config: config.meta), innerLearningRate: config.meta.innerLearningRate)
            logger.notice("initial parameters from \(path)")
        }
        let summary = try runTraining(spec: spec, source: source, cluster: cluster, checkpointDir: checkpointDir,
                                      checkpointEvery: checkpointEvery, metrics: metrics, resume: checkpoint,
                                      initial: initial, logger: logger)
        if let sig = summary.stoppedBySignal {
            FileHandle.standardError.write(Data("\nstopped by signal \(sig) at step \(summary.steps); checkpoint written to \(checkpointDir) (continue with --resume)\n".utf8))
            throw ExitCode(128 + sig)
        }
        print("final_params_sha256 \(summary.finalHash)")
    }
}

/// Runs a training run with the cluster options (shared by train, pretrain and demo).
func runTraining(spec: RunSpec, source: TaskSource, cluster: ClusterOptions, checkpointDir: String, checkpointEvery: Int,
                 metrics: String?, resume: Checkpoint?, initial: [Float]?, logger: Logger,
                 quiet: Bool = false, onStep: ((StepReport, TrainingRun) -> Void)? = nil,
                 onEvaluation: ((HeldOutScore) -> Void)? = nil) throws -> RunSummary {
    var outputs = RunOutputs(checkpointFolder: checkpointDir)
    outputs.checkpointEvery = checkpointEvery
    outputs.metricsPath = metrics
    let mode: ComputeMode
    var launcher: LocalWorkers?
    guard (0...64).contains(cluster.prefetch) else { throw ValidationError("--prefetch must be between 0 and 64") }
    if cluster.inProcess {
        guard cluster.threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        mode = .inProcess(threads: cluster.threads)
    } else {
        let security = try cluster.securityForCoordinator(logger: logger)
        if cluster.localWorkers > 0 {
            launcher = try LocalWorkers(count: cluster.localWorkers, threads: cluster.threads, keys: security?.local, logger: logger)
        }
        mode = .distributed(endpoint: cluster.endpoint, minimumWorkers: max(cluster.minWorkers, cluster.localWorkers > 0 ? 1 : 0),
                            security: security?.config)
    }
    defer { launcher?.stop() }
    let run = try TrainingRun(spec: spec, source: source, mode: mode, outputs: outputs, resume: resume, initial: initial, logger: logger)
    run.prefetch = cluster.prefetch
    let progress = ProgressLine(total: spec.training.steps, batch: spec.training.metaBatch, quiet: quiet)
    run.onStep = { report, r in
        progress.step(report, workers: r.workerStatus)
        onStep?(report, r)
    }
    run.onEvaluation = { score in
        progress.note("held-out 5-shot Dice \(score.dice) at step \(score.step)")
        onEvaluation?(score)
    }
    run.onStatus = { progress.note($0) }
    run.onBound = { endpoint in
        do { try launcher?.start(endpoint: endpoint) } catch { logger.error("cannot start local workers: \(error)") }
    }
    let summary = try run.run()
    progress.finish()
    return summary
}

/// Reads initial parameters from a checkpoint or parameter file into a layout (model part; with
/// learned rates absent from the file, the rates start at the inner learning rate).
enum InitialParameters {
    static func load(_ path: String, layout: MetaLayout, innerLearningRate: Float) throws -> [Float] {
        let file = try Safetensors.read(path: path)
        var values = layout.initialValues(seed: 0, innerLearningRate: innerLearningRate)
        for e in layout.model.entries {
            let t = try file.require(e.name, in: path)
            guard t.shape == e.shape else { throw SafetensorsError.shapeMismatch(path: path, name: e.name, expected: e.shape, found: t.shape) }
            guard t.values.allSatisfy(\.isFinite) else { throw SafetensorsError.corrupt(path: path, reason: "\(e.name) has non-finite values") }
            values.replaceSubrange(e.range, with: t.values)
        }
        for t in layout.tensors where t.name.hasPrefix("inner_lr.") {
            if let saved = file[t.name], saved.shape == t.shape { values.replaceSubrange(t.range, with: saved.values) }
        }
        return values
    }
}

func makeLogger(_ level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return h
    }
    var logger = Logger(label: "medmaml.coordinator")
    logger.logLevel = level
    return logger
}

/// A progress line per step on stderr: step, meta-loss, query Dice, tasks/s, workers, ETA.
final class ProgressLine: @unchecked Sendable {
    let total: Int
    let batch: Int
    let quiet: Bool
    let clock = MonotonicClock()
    var first: (step: Int, time: Double)?

    init(total: Int, batch: Int, quiet: Bool) {
        self.total = total
        self.batch = batch
        self.quiet = quiet
    }

    func step(_ r: StepReport, workers: (workers: Int, threads: Int)) {
        let done = r.step + 1
        if first == nil { first = (r.step, clock.now - r.seconds) }
        let elapsed = clock.now - first!.time, steps = Double(done - first!.step)
        let eta = steps > 0 ? elapsed / steps * Double(total - done) : 0
        let who = workers.workers > 0 ? "  workers \(workers.workers) (\(workers.threads) threads)" : ""
        let line = String(format: "step %d/%d  meta-loss %.4f  query-dice %.3f  %.2f tasks/s", done, total, r.metaLoss, r.queryDice,
                          Double(batch) / max(r.seconds, 1e-9)) + who + "  ETA " + Self.duration(eta)
        emit(line)
    }

    func note(_ text: String) { emit(text) }

    func finish() {}

    private func emit(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}

extension DataOptions {
    /// Preprocessing options from the flags.
    func volumeOptions() throws -> VolumeOptions {
        guard (16...1024).contains(imageSize), imageSize % 4 == 0 else {
            throw ValidationError("--image-size must be a multiple of 4 in 16...1024")
        }
        var options = VolumeOptions()
        options.size = imageSize
        options.axis = axis
        options.augment = augment
        options.skipBad = skipBad
        options.sameVolume = !acrossVolumes
        options.requireLabel = !includeEmptySlices
        if let window = ctWindow {
            let parts = window.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, parts[1] > 0 else { throw ValidationError("--ct-window takes LEVEL,WIDTH, for example 40,400") }
            options.normalisation = .ctWindow(level: parts[0], width: parts[1])
        }
        return options
    }
}
