import Foundation
import Logging

/// Where a run's tasks are computed.
public enum ComputeMode: Sendable {
    /// Task threads in this process, no sockets (the reference for overhead and determinism).
    case inProcess(threads: Int)
    /// Workers over ZeroMQ: the coordinator binds `endpoint` and waits for `minimumWorkers`.
    case distributed(endpoint: String, minimumWorkers: Int, security: SecurityConfig?)
}

/// What a run writes besides its checkpoints.
public struct RunOutputs: Sendable {
    public var checkpointFolder: String
    /// Checkpoint every this many outer steps (0: only on signals and at the end).
    public var checkpointEvery = 0
    /// Checkpoints kept (older ones are deleted).
    public var keepCheckpoints = 3
    /// One JSON object per step, appended.
    public var metricsPath: String?
    public init(checkpointFolder: String) { self.checkpointFolder = checkpointFolder }
}

/// A held-out evaluation: overall and per-task Dice.
public struct HeldOutScore: Sendable, Codable {
    public var step: Int
    public var dice: MeanCI
    public var perTask: [String: MeanCI]
}

/// How a run ended.
public struct RunSummary: Sendable {
    public var finalParameters: [Float]
    public var finalHash: String
    public var steps: Int
    public var stoppedBySignal: Int32?
    public var evaluations: [HeldOutScore]
    public var reports: [StepReport]
}

/// One meta-training run from start (or a checkpoint) to the last step, in process or on
/// workers. Both modes sample the same meta-batches, average per-task meta-gradients in task
/// order and apply the same Adam update, so they end with bitwise-identical parameters.
public final class TrainingRun: @unchecked Sendable {
    public let spec: RunSpec
    public let source: TaskSource
    public let mode: ComputeMode
    public let outputs: RunOutputs
    public let outer: OuterLoop
    let logger: Logger
    let test: [Int]
    /// Called on the run's thread after every step and evaluation (progress lines, plots).
    public var onStep: ((StepReport, TrainingRun) -> Void)?
    public var onEvaluation: ((HeldOutScore) -> Void)?
    /// Called with a status line while waiting (no workers yet, workers lost).
    public var onStatus: ((String) -> Void)?
    /// Called once the socket is bound, with the resolved endpoint (for launching local workers).
    public var onBound: ((String) -> Void)?
    /// Tasks per worker thread sent ahead of need (distributed mode; see `Scheduler`).
    public var prefetch = Scheduler.Settings.defaultPrefetch
    public private(set) var evaluations: [HeldOutScore] = []
    public private(set) var reports: [StepReport] = []
    /// Workers ready and their threads, for progress lines (distributed mode).
    public private(set) var workerStatus = (workers: 0, threads: 0)

    public init(spec: RunSpec, source: TaskSource, mode: ComputeMode, outputs: RunOutputs,
                resume: Checkpoint? = nil, initial: [Float]? = nil, logger: Logger) throws {
        guard source.imageShape == spec.training.meta.model.input else {
            throw MetaConfigError.invalid("the model input \(spec.training.meta.model.input) does not match the dataset's images \(source.imageShape)")
        }
        self.spec = spec
        self.source = source
        self.mode = mode
        self.outputs = outputs
        self.logger = logger
        let (train, test) = spec.partition(source)
        self.test = test
        outer = try OuterLoop(config: spec.training, trainTasks: train, initial: initial)
        if let resume {
            outer.restore(meta: resume.meta, optimizer: resume.optimizer, step: resume.step)
        }
    }

    // MARK: Running

    public func run() throws -> RunSummary {
        try FileManager.default.createDirectory(atPath: outputs.checkpointFolder, withIntermediateDirectories: true)
        var stopped: Int32?
        switch mode {
        case .inProcess(let threads): stopped = try runInProcess(threads: threads)
        case .distributed(let endpoint, let minimum, let security):
            stopped = try runDistributed(endpoint: endpoint, minimumWorkers: minimum, security: security)
        }
        try checkpoint()
        if stopped == nil { try writeFinal() }
        return RunSummary(finalParameters: outer.meta, finalHash: outer.parameterHash, steps: outer.step,
                          stoppedBySignal: stopped, evaluations: evaluations, reports: reports)
    }

    private func runInProcess(threads: Int) throws -> Int32? {
        let trainConfig = spec.training, evalConfig = spec.evaluationConfig
        let pool = try ComputePool<(MetaLearner<Float>, MetaLearner<Float>?), Scheduler.Job, Result<Scheduler.Outcome, DataError>>(threads: threads) { _ in
            (try MetaLearner<Float>(config: trainConfig.meta),
             evalConfig == trainConfig.meta ? nil : try MetaLearner<Float>(config: evalConfig))
        }
        while !outer.done {
            if let sig = StopSignal.received { return sig }
            let start = DispatchTime.now().uptimeNanoseconds
            let jobs = outer.currentBatch.map { Scheduler.Job(kind: .metaGradient, ref: $0) }
            let outcomes = try computeLocally(jobs, pool: pool)
            try finishStep(outcomes, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            if evaluationDue {
                try recordEvaluation(try computeLocally(evaluationJobs, pool: pool))
            }
        }
        return nil
    }

    private func computeLocally(
        _ jobs: [Scheduler.Job],
        pool: ComputePool<(MetaLearner<Float>, MetaLearner<Float>?), Scheduler.Job, Result<Scheduler.Outcome, DataError>>
    ) throws -> [Scheduler.Outcome] {
        let meta = outer.meta, step = outer.step, spec = self.spec, source = self.source
        let results = pool.run(jobs) { learners, job, slot in
            TaskExecutor.run(job: job, slot: slot, meta: meta, step: step, spec: spec, source: source,
                             training: learners.0, evaluation: learners.1 ?? learners.0)
                .map { Scheduler.Outcome(result: $0.0, gradient: $0.1, worker: "local") }
        }
        return try results.map { try $0.get() }
    }

    private func runDistributed(endpoint: String, minimumWorkers: Int, security: SecurityConfig?) throws -> Int32? {
        let context = ZMQContext()
        let zap = try security.map { try ZAPHandler(context: context, authorized: $0.authorizedKeys, logger: logger) }
        defer { zap?.stop() }
        let router = try ZMQSocket(context, .router)
        defer { router.close() }
        try router.set(ZMQSocket.optionRouterMandatory, Int32(1))
        // Gradients are the largest frames: refuse anything much larger at the socket.
        try router.set(ZMQSocket.optionMaxMessageSize, Int64(outer.layout.count * 4 + Wire.maximumBodySize + 4096))
        if let security { try security.configureServer(router) }
        try router.bind(endpoint)
        onBound?(router.lastEndpoint)
        logger.info("coordinator listening", metadata: ["endpoint": "\(router.lastEndpoint)", "run": "\(spec.runID)"])

        let numerics = try NumericsCheck.fingerprint(run: spec, source: source)
        guard let runID = Wire.RunID(hex: spec.runID) else { throw MetaConfigError.invalid("bad run id \(spec.runID)") }
        var settings = Scheduler.Settings(parameterCount: outer.layout.count)
        settings.prefetch = prefetch
        var scheduler = Scheduler(
            run: runID, welcome: Wire.Welcome(run: spec), datasetFingerprint: spec.dataset.identity.fingerprint,
            numericsFingerprint: numerics, settings: settings)
        let clock = MonotonicClock()
        var paramsFrames: (batch: UInt64, frames: [[UInt8]])?
        var completed: [Scheduler.Outcome]?
        var fatal: String?
        var lastStatus = -1e9

        func perform(_ actions: [Scheduler.Action]) throws {
            for action in actions {
                switch action {
                case .send(let id, let message):
                    _ = try router.send([id] + message.encode(), dontWait: true)
                case .sendParams(let id, let batch):
                    if paramsFrames?.batch != batch {
                        paramsFrames = (batch, Wire.Message(.params, run: runID, step: batch, body: Wire.Params(count: outer.meta.count),
                                                             payload: outer.meta).encode())
                    }
                    _ = try router.send([id] + paramsFrames!.frames, dontWait: true)
                case .log(let level, let text):
                    logger.log(level: level, "\(text)")
                case .batchComplete(_, let outcomes):
                    completed = outcomes
                case .fatal(let why):
                    fatal = why
                }
            }
            workerStatus = (scheduler.readyWorkers, scheduler.readyThreads)
        }

        /// Runs one batch to completion on the workers; nil if a stop signal came first.
        func runBatch(id: UInt64, jobs: [Scheduler.Job]) throws -> [Scheduler.Outcome]? {
            completed = nil
            paramsFrames = nil
            try perform(scheduler.startBatch(id: id, jobs: jobs, now: clock.now))
            while completed == nil {
                if let why = fatal { throw MetaConfigError.invalid(why) }
                if StopSignal.received != nil { return nil }
                if try ZMQSocket.poll([router], timeoutMilliseconds: 100)[0] {
                    while let frames = try router.receive(dontWait: true, maxFrames: 4) {
                        guard frames.count >= 2 else { continue }
                        try perform(scheduler.receive(from: frames[0], frames: Array(frames.dropFirst()), now: clock.now))
                    }
                }
                try perform(scheduler.tick(now: clock.now))
                if scheduler.readyWorkers == 0 && clock.now - lastStatus > 5 {
                    lastStatus = clock.now
                    onStatus?("no worker alive: waiting for workers to (re)connect to \(router.lastEndpoint); \(scheduler.remainingSlots) task(s) of batch \(id) pending")
                }
            }
            return completed
        }

        // Wait for the minimum number of workers before the first batch (if any work is left).
        while !outer.done && scheduler.readyWorkers < minimumWorkers {
            if StopSignal.received != nil { break }
            if try ZMQSocket.poll([router], timeoutMilliseconds: 100)[0] {
                while let frames = try router.receive(dontWait: true, maxFrames: 4) {
                    guard frames.count >= 2 else { continue }
                    try perform(scheduler.receive(from: frames[0], frames: Array(frames.dropFirst()), now: clock.now))
                }
            }
            try perform(scheduler.tick(now: clock.now))
            if clock.now - lastStatus > 5 {
                lastStatus = clock.now
                onStatus?("waiting for workers: \(scheduler.readyWorkers)/\(minimumWorkers) ready on \(router.lastEndpoint)")
            }
        }
        var stopped: Int32?
        while !outer.done {
            if let sig = StopSignal.received { stopped = sig; break }
            let start = clock.now
            let jobs = outer.currentBatch.map { Scheduler.Job(kind: .metaGradient, ref: $0) }
            guard let outcomes = try runBatch(id: UInt64(outer.step), jobs: jobs) else { stopped = StopSignal.received; break }
            try finishStep(outcomes, seconds: clock.now - start)
            if evaluationDue {
                guard let scores = try runBatch(id: (1 << 62) | UInt64(outer.step), jobs: evaluationJobs) else {
                    stopped = StopSignal.received
                    break
                }
                try recordEvaluation(scores)
            }
        }
        if stopped == nil {
            try perform(scheduler.shutdownAll(reason: "the run is complete"))
        }
        return stopped
    }

    // MARK: Steps, evaluation, checkpoints

    private func finishStep(_ outcomes: [Scheduler.Outcome], seconds: Double) throws {
        let stats = outcomes.map {
            MetaLearner<Float>.Stats(queryLoss: $0.result.queryLoss, queryDice: $0.result.queryDice,
                                     supportLoss: $0.result.supportLoss, objective: $0.result.objective)
        }
        let report = outer.apply(gradients: outcomes.map { $0.gradient! }, stats: stats, seconds: seconds)
        reports.append(report)
        onStep?(report, self)
        if outputs.checkpointEvery > 0 && outer.step % outputs.checkpointEvery == 0 { try checkpoint() }
        if let path = outputs.metricsPath, !evaluationDue { appendMetrics(path, report, heldOut: nil) }
    }

    private var evaluationDue: Bool {
        spec.evaluation.every > 0 && !test.isEmpty && (outer.step % spec.evaluation.every == 0 || outer.done)
    }

    private var evaluationJobs: [Scheduler.Job] {
        TaskSampler.evaluation(seed: spec.evaluation.seed, pool: test, perTask: spec.evaluation.perTask)
            .map { Scheduler.Job(kind: .evaluate, ref: $0) }
    }

    private func recordEvaluation(_ outcomes: [Scheduler.Outcome]) throws {
        let jobs = evaluationJobs
        var byTask: [String: [Double]] = [:]
        for (job, o) in zip(jobs, outcomes) { byTask[source.taskNames[job.ref.task], default: []].append(Double(o.result.queryDice)) }
        let score = HeldOutScore(step: outer.step, dice: MeanCI(outcomes.map { Double($0.result.queryDice) }),
                                 perTask: byTask.mapValues { MeanCI($0) })
        evaluations.append(score)
        onEvaluation?(score)
        logger.info("held-out evaluation", metadata: ["meta.step": "\(outer.step)", "dice": "\(score.dice)"])
        if let path = outputs.metricsPath, let report = reports.last { appendMetrics(path, report, heldOut: score.dice) }
    }

    private func appendMetrics(_ path: String, _ r: StepReport, heldOut: MeanCI?) {
        var object: [String: Any] = [
            "step": r.step + 1, "meta_loss": Double(r.metaLoss), "query_dice": Double(r.queryDice),
            "support_loss": Double(r.supportLoss), "gradient_norm": Double(r.gradientNorm), "order": r.order.rawValue,
            "seconds": r.seconds, "tasks_per_second": Double(spec.training.metaBatch) / max(r.seconds, 1e-9),
            "workers": workerStatus.workers,
        ]
        if let h = heldOut {
            object["heldout_dice"] = h.mean
            object["heldout_dice_ci95"] = h.halfWidth
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        let line = data + Data("\n".utf8)
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(line)
            try? handle.close()
        } else {
            FileManager.default.createFile(atPath: path, contents: line)
        }
    }

    /// Writes a checkpoint of the current state (between steps, so always consistent).
    public func checkpoint() throws {
        let path = outputs.checkpointFolder + "/" + Checkpoint.fileName(step: outer.step)
        try Checkpoint(run: spec, step: outer.step, meta: outer.meta, optimizer: outer.optimizerState).write(to: path)
        Checkpoint.prune(outputs.checkpointFolder, keep: outputs.keepCheckpoints)
        logger.debug("checkpoint written", metadata: ["path": "\(path)"])
    }

    /// `final.safetensors`: the parameters by name (a PyTorch state dict) and the run's spec.
    private func writeFinal() throws {
        let file = Safetensors.File(
            tensors: ParameterFile.tensors(outer.meta, layout: outer.layout),
            metadata: ["format": "medmaml-parameters-1", "step": "\(outer.step)", "run_id": spec.runID,
                       "run_spec": String(decoding: canonicalJSON(spec), as: UTF8.self),
                       "sha256": outer.parameterHash])
        try Safetensors.write(file, to: outputs.checkpointFolder + "/final.safetensors")
    }
}

/// Seconds since an arbitrary start, monotonic.
public struct MonotonicClock: Sendable {
    private let start = DispatchTime.now().uptimeNanoseconds
    public init() {}
    public var now: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}

/// Computes one job (a meta-gradient or an evaluation) the same way on a worker thread and
/// in process.
public enum TaskExecutor {
    public static func run(job: Scheduler.Job, slot: Int, meta: [Float], step: Int, spec: RunSpec, source: TaskSource,
                           training: MetaLearner<Float>, evaluation: MetaLearner<Float>) -> Result<(Wire.Result, [Float]?), DataError> {
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        switch job.kind {
        case .metaGradient:
            return MetaTrainer.compute(learner: training, meta: meta, ref: job.ref, step: step, source: source, config: spec.training)
                .map { r in
                    (Wire.Result(slot: slot, kind: .metaGradient, queryLoss: r.stats.queryLoss, queryDice: r.stats.queryDice,
                                 supportLoss: r.stats.supportLoss, objective: r.stats.objective, seconds: seconds()), r.gradient)
                }
        case .evaluate:
            let e = spec.evaluation
            do {
                let sample = try source.sample(task: job.ref.task, index: job.ref.index, seed: e.seed, support: e.support, query: e.query)
                let s = FewShotEvaluation.score(learner: evaluation, meta: meta, sample: sample,
                                                steps: e.steps ?? spec.training.meta.innerSteps)
                return .success((Wire.Result(slot: slot, kind: .evaluate, queryLoss: s.queryLoss, queryDice: s.dice,
                                             supportLoss: 0, objective: 0, seconds: seconds()), nil))
            } catch {
                return .failure(error)
            }
        }
    }
}
