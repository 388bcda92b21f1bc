import Core
import Foundation
import Logging
import MetaLearning
import Training
import Transport
import Wire

/// Computes a run's tasks on workers over ZeroMQ: the coordinator's socket loop. It binds a
/// ROUTER socket (CURVE with a ZAP allowlist when `security` is given), waits for
/// `minimumWorkers`, and for each batch drives the `Scheduler`, carrying out its actions.
/// Workers receive the run's specification when they register, so they need only the address.
public final class DistributedBackend: TaskBackend {
    public let endpoint: String
    public let minimumWorkers: Int
    public let security: SecurityConfig?
    /// Tasks per worker thread sent ahead of need (see `Scheduler`).
    public var prefetch = Wire.defaultPrefetch
    /// Called with a status line while waiting (no workers yet, workers lost).
    public var onStatus: ((String) -> Void)?
    /// Called once the socket is bound, with the resolved endpoint (for launching local workers).
    public var onBound: ((String) -> Void)?

    private let logger: Logger
    private var context: ZMQContext?
    private var zap: ZAPHandler?
    private var router: ZMQSocket?
    private var scheduler: Scheduler?
    private var runID = Wire.RunID.none
    private let clock = MonotonicClock()
    private var lastStatus = -1e9
    // Per batch: the parameters' frames (encoded once, sent to every worker), the outcome.
    private var parameters: [Float] = []
    private var paramsFrames: (batch: UInt64, frames: [[UInt8]])?
    private var completed: [Scheduler.Outcome]?
    private var fatal: String?

    public init(endpoint: String, minimumWorkers: Int, security: SecurityConfig?, logger: Logger) {
        self.logger = logger
        self.endpoint = endpoint
        self.minimumWorkers = minimumWorkers
        self.security = security
    }

    deinit { close() }

    public var status: (workers: Int, threads: Int) { (scheduler?.readyWorkers ?? 0, scheduler?.readyThreads ?? 0) }

    public func start(_ run: TrainingRun) throws -> Bool {
        let context = ZMQContext()
        self.context = context
        zap = try security.map { try ZAPHandler(context: context, authorized: $0.authorizedKeys, logger: logger) }
        let router = try ZMQSocket(context, .router)
        self.router = router
        try router.set(.routerMandatory, Int32(1))
        // Gradients are the largest frames: refuse anything much larger at the socket.
        try router.set(.maximumMessageSize, Int64(Wire.maximumMessageSize(parameterCount: run.outer.layout.count)))
        if let security { try security.configureServer(router) }
        try router.bind(endpoint)
        onBound?(router.lastEndpoint)
        logger.info("coordinator listening", metadata: ["endpoint": "\(router.lastEndpoint)", "run": "\(run.spec.runID)"])

        let numerics = try NumericsCheck.fingerprint(run: run.spec, source: run.source)
        guard let id = Wire.RunID(hex: run.spec.runID) else { throw MetaConfigError.invalid("bad run id \(run.spec.runID)") }
        runID = id
        var settings = Scheduler.Settings(parameterCount: run.outer.layout.count)
        settings.prefetch = prefetch
        scheduler = Scheduler(run: id, welcome: Wire.Welcome(run: run.spec.wireForm),
                              datasetFingerprint: run.spec.dataset.identity.fingerprint, numericsFingerprint: numerics,
                              settings: settings)
        // Wait for the minimum number of workers before the first batch (if any work is left).
        while !run.outer.done && scheduler!.readyWorkers < minimumWorkers {
            if StopSignal.received != nil { return false }
            try pump()
            if clock.now - lastStatus > 5 {
                lastStatus = clock.now
                onStatus?("waiting for workers: \(scheduler!.readyWorkers)/\(minimumWorkers) ready on \(router.lastEndpoint)")
            }
        }
        return true
    }

    public func compute(_ jobs: [TaskJob], parameters: [Float], phase: BatchPhase, step: Int) throws -> [TaskOutcome]? {
        guard let router else { preconditionFailure("compute before start") }
        let batch = phase == .training ? Wire.BatchID.training(step: step) : Wire.BatchID.evaluation(step: step)
        self.parameters = parameters
        completed = nil
        paramsFrames = nil
        let wireJobs = jobs.map { Scheduler.Job(kind: $0.kind.wire, ref: Wire.TaskReference(task: $0.ref.task, index: $0.ref.index)) }
        try perform(scheduler!.startBatch(id: batch, jobs: wireJobs, now: clock.now))
        while completed == nil {
            if let why = fatal { throw MetaConfigError.invalid(why) }
            if StopSignal.received != nil { return nil }
            try pump()
            if scheduler!.readyWorkers == 0 && clock.now - lastStatus > 5 {
                lastStatus = clock.now
                onStatus?("no worker alive: waiting for workers to (re)connect to \(router.lastEndpoint); \(scheduler!.remainingSlots) task(s) of batch \(batch) pending")
            }
        }
        return completed!.map {
            TaskOutcome(stats: TaskStatistics(queryLoss: $0.result.queryLoss, queryDice: $0.result.queryDice,
                                              supportLoss: $0.result.supportLoss, objective: $0.result.objective),
                        gradient: $0.gradient, seconds: $0.result.seconds, worker: $0.worker)
        }
    }

    public func finish() {
        if scheduler != nil { try? perform(scheduler!.shutdownAll(reason: "the run is complete")) }
        close()
    }

    private func close() {
        router?.close()
        router = nil
        zap?.stop()
        zap = nil
    }

    /// Waits up to 100 ms for messages, hands them to the scheduler, then ticks it.
    private func pump() throws {
        guard let router else { return }
        if try ZMQSocket.poll([router], timeoutMilliseconds: 100)[0] {
            while let frames = try router.receive(dontWait: true, maxFrames: Wire.maximumFrames + 1) {
                guard frames.count >= 2 else { continue }
                try perform(scheduler!.receive(from: frames[0], frames: Array(frames.dropFirst()), now: clock.now))
            }
        }
        try perform(scheduler!.tick(now: clock.now))
    }

    private func perform(_ actions: [Scheduler.Action]) throws {
        guard let router else { return }
        for action in actions {
            switch action {
            case .send(let id, let message):
                _ = try router.send([id] + message.encode(), dontWait: true)
            case .sendParams(let id, let batch):
                if paramsFrames?.batch != batch {
                    paramsFrames = (batch, Wire.Message(.params, run: runID, batch: batch, body: Wire.Params(count: parameters.count),
                                                         payload: parameters).encode())
                }
                _ = try router.send([id] + paramsFrames!.frames, dontWait: true)
            case .log(let level, let message, let metadata):
                logger.log(level: level, message, metadata: metadata)
            case .batchComplete(_, let outcomes):
                completed = outcomes
            case .fatal(let why):
                fatal = why
            }
        }
    }
}
