import Core
import Datasets
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
    /// Asked while too few workers are ready: why no worker can come any more (every local
    /// worker process exited and none other can reach a loopback endpoint), or nil to keep
    /// waiting. A reason ends the run with `NoWorkerCanCome`.
    public var abandonWhenIdle: (() -> String?)?
    /// Whether the finished run waits for workers that lost their connection to come back and
    /// hear it (`finish`): not when only local workers, which nothing restarts, can connect.
    public var waitsForLostWorkers = true
    private var lastAbandonCheck = -1e9

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
    /// Computes slots on the coordinator when no worker can settle them (one at a time, on
    /// its own thread, so the socket loop keeps heartbeating); verdicts wait in `verdicts`.
    private var arbiter: Arbiter?
    /// Room for the arbiter's computation, which starts after the memory ceiling is set: twice
    /// what the numerics check's one task added (held-out tasks may have more support images,
    /// and the allocator keeps some slack).
    private var arbitrationBytes = 0
    private let verdicts = Locked<[(batch: UInt64, slot: Int, Result<(Wire.Result, [Float]?), Scheduler.ArbitrationFailure>)]>([])
    /// Fraction of slots computed twice and compared (`--verify`).
    public var verifyFraction = 0.0
    /// Seconds between heartbeats (`--heartbeat`), which workers adopt from WELCOME.
    public var heartbeatInterval = Wire.heartbeatInterval
    /// Memory (bytes) the socket may hold above the coordinator's own use before every
    /// connection is dropped (see `guardMemory`).
    public var memoryBudget = Wire.defaultMemoryBudget
    private var memoryCeiling = Int.max
    private var lastMemoryCheck = -1e9
    private var boundEndpoint = ""
    private var monitor: CoordinatorMetrics?

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
        monitor = CoordinatorMetrics(run: run.spec.runID, requiredWorkers: minimumWorkers)
        zap = try security.map { try ZAPHandler(context: context, authorized: $0.authorizedKeys, logger: logger) }
        let router = try ZMQSocket(context, .router)
        self.router = router
        try router.set(.routerMandatory, Int32(1))
        // Gradients are the largest frames: refuse anything much larger at the socket.
        try router.set(.maximumMessageSize, Int64(Wire.maximumMessageSize(parameterCount: run.outer.layout.count)))
        if let security { try security.configureServer(router) }
        try router.bind(endpoint)
        boundEndpoint = router.lastEndpoint
        onBound?(router.lastEndpoint)
        logger.info("coordinator listening", metadata: ["endpoint": "\(router.lastEndpoint)", "run": "\(run.spec.runID)"])

        let numerics = try NumericsCheck.measure(run: run.spec, source: run.source)
        guard let id = Wire.RunID(hex: run.spec.runID) else { throw MetaConfigError.invalid("bad run id \(run.spec.runID)") }
        runID = id
        var settings = Scheduler.Settings(parameterCount: run.outer.layout.count)
        settings.prefetch = prefetch
        settings.verifyFraction = verifyFraction
        settings.heartbeat = Wire.Heartbeat(interval: heartbeatInterval)
        settings.referenceNorm = numerics.gradientNorm
        arbitrationBytes = 2 * numerics.taskBytes
        arbiter = Arbiter(spec: run.spec, source: run.source)
        scheduler = Scheduler(run: id, welcome: Wire.Welcome(run: run.spec.wireForm),
                              datasetFingerprint: run.spec.dataset.identity.fingerprint, numericsFingerprint: numerics.fingerprint,
                              settings: settings)
        resetMemoryCeiling()
        // Wait for the minimum number of workers before the first batch (if any work is left).
        while !run.outer.done && scheduler!.readyWorkers < minimumWorkers {
            if StopSignal.received != nil { return false }
            try pump()
            try checkAbandon()
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
            if scheduler!.readyWorkers == 0 { try checkAbandon() }
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

    /// Ends the wait when `abandonWhenIdle` gives a reason (asked twice a second at most).
    private func checkAbandon() throws {
        guard let abandonWhenIdle, clock.now - lastAbandonCheck > 0.5 else { return }
        lastAbandonCheck = clock.now
        if let why = abandonWhenIdle() { throw NoWorkerCanCome(reason: why) }
    }

    /// Tells every worker the run is over, then waits up to `farewellPeriod` for workers that
    /// lost their connection to come back and hear it (only while some are missing, and only
    /// if `waitsForLostWorkers`), so that a batch system's restarted worker exits 0 instead of
    /// waiting for a coordinator that is gone.
    public func finish() {
        guard scheduler != nil else { return close() }
        try? perform(scheduler!.shutdownAll(reason: "the run is complete"))
        guard waitsForLostWorkers else { return close() }
        let deadline = clock.now + scheduler!.settings.heartbeat.farewellPeriod
        if scheduler!.missingWorkers > 0 {
            onStatus?("the run is complete; waiting up to \(Int(scheduler!.settings.heartbeat.farewellPeriod)) s for \(scheduler!.missingWorkers) worker(s) that lost their connection, to tell them")
        }
        while scheduler!.missingWorkers > 0 && clock.now < deadline && StopSignal.received == nil {
            do { try pump() } catch { break }
        }
        close()
    }

    private func close() {
        router?.close()
        router = nil
        zap?.stop()
        zap = nil
    }

    /// The resident size past which connections are dropped: what the process uses now, plus
    /// the budget, plus room for a gradient frame from every worker and for the arbiter's
    /// own computation of a task (settling a disagreement is not a flood).
    private func resetMemoryCeiling() {
        guard let rss = ProcessMemory.residentBytes() else { return }
        memoryCeiling = rss + memoryBudget + 64 * Wire.maximumMessageSize(parameterCount: scheduler?.settings.parameterCount ?? 0)
            + arbitrationBytes
    }

    /// libzmq delivers a multipart message only once its last frame has arrived, and buffers
    /// the frames before that without bound (its high-water marks count whole messages), so
    /// a peer that sends frames flagged "more" forever could exhaust the coordinator's memory
    /// before any of it reaches the scheduler. Every 100 ms, the resident size is compared
    /// with the ceiling; past it, the ROUTER socket is closed (freeing every partial message)
    /// and bound again, and every worker is forgotten, with its tasks requeued: honest workers
    /// are told to register again (RESET) on their next message, as after a restart.
    private func guardMemory() throws {
        guard clock.now - lastMemoryCheck >= 0.1 else { return }
        lastMemoryCheck = clock.now
        guard let rss = ProcessMemory.residentBytes(), rss > memoryCeiling, let old = router, let context else { return }
        logger.error("the coordinator's memory passed its ceiling: dropping every connection (a peer may be sending a multipart message that never ends)",
                     metadata: ["resident.mb": "\(rss >> 20)", "ceiling.mb": "\(memoryCeiling >> 20)"])
        old.close()
        let fresh = try ZMQSocket(context, .router)
        try fresh.set(.routerMandatory, Int32(1))
        try fresh.set(.maximumMessageSize, Int64(Wire.maximumMessageSize(parameterCount: scheduler!.settings.parameterCount)))
        if let security { try security.configureServer(fresh) }
        // libzmq closes the old listener on its own thread: the port frees up a moment later.
        var bound = false
        for _ in 0..<100 where !bound {
            bound = (try? fresh.bind(boundEndpoint)) != nil
            if !bound { usleep(50_000) }
        }
        if !bound { try fresh.bind(boundEndpoint) }   // the last attempt reports why
        router = fresh
        monitor?.connectionResets.increment()
        try perform(scheduler!.disconnectAll(now: clock.now))
        ProcessMemory.trim()
        resetMemoryCeiling()
    }

    /// Waits up to 100 ms for messages, hands at most `Wire.messagesPerTick` of them to the
    /// scheduler (a flood cannot starve heartbeats, expiry and signals), delivers the arbiter's
    /// verdicts, then ticks the scheduler.
    private func pump() throws {
        guard let router else { return }
        if try ZMQSocket.poll([router], timeoutMilliseconds: 100)[0] {
            var read = 0
            while read < Wire.messagesPerTick, let m = try router.receiveMessage(dontWait: true, maxFrames: Wire.maximumFrames + 1) {
                read += 1
                monitor?.messagesReceived.increment()
                monitor?.bytesReceived.increment(by: m.frames.reduce(0) { $0 + $1.count })
                guard m.frames.count >= 2 else { continue }
                try perform(scheduler!.receive(from: m.frames[0], identity: m.userID, frames: Array(m.frames.dropFirst()), now: clock.now))
            }
        }
        for verdict in verdicts.withLock({ v in defer { v = [] }; return v }) {
            try perform(scheduler!.arbitrated(batch: verdict.batch, slot: verdict.slot, verdict.2, now: clock.now))
        }
        try perform(scheduler!.tick(now: clock.now))
        monitor?.update(scheduler!)
        try guardMemory()
    }

    private func perform(_ actions: [Scheduler.Action]) throws {
        guard let router else { return }
        for action in actions {
            switch action {
            case .send(let id, let message):
                let frames = message.encode()
                if try router.send([id] + frames, dontWait: true) { monitor?.bytesSent.increment(by: frames.reduce(0) { $0 + $1.count }) }
            case .sendParams(let id, let batch):
                if paramsFrames?.batch != batch {
                    paramsFrames = (batch, Wire.Message(.params, run: runID, batch: batch, body: Wire.Params(count: parameters.count),
                                                         payload: parameters).encode())
                }
                if try router.send([id] + paramsFrames!.frames, dontWait: true) {
                    monitor?.bytesSent.increment(by: paramsFrames!.frames.reduce(0) { $0 + $1.count })
                }
            case .log(let level, let message, let metadata):
                logger.log(level: level, message, metadata: metadata)
            case .arbitrate(let batch, let slot, let job):
                let parameters = self.parameters, verdicts = self.verdicts
                arbiter?.compute(job, slot: slot, batch: batch, parameters: parameters) { slot, verdict in
                    verdicts.withLock { $0.append((batch, slot, verdict)) }
                }
            case .batchComplete(_, let outcomes):
                completed = outcomes
            case .fatal(let why):
                fatal = why
            }
        }
    }
}

/// The coordinator's own computation of a slot, for the scheduler's arbitration: one serial
/// queue and one executor, so the socket loop is never blocked by it.
final class Arbiter: @unchecked Sendable {
    private let spec: RunSpec
    private let source: TaskSource
    private let queue = DispatchQueue(label: "medmaml.arbiter")
    private var executor: TaskExecutor?

    init(spec: RunSpec, source: TaskSource) {
        self.spec = spec
        self.source = source
    }

    func compute(_ job: Scheduler.Job, slot: Int, batch: UInt64, parameters: [Float],
                 done: @escaping @Sendable (Int, Result<(Wire.Result, [Float]?), Scheduler.ArbitrationFailure>) -> Void) {
        queue.async { [self] in
            do {
                if executor == nil { executor = try TaskExecutor(run: spec, source: source) }
                let taskJob = TaskJob(kind: job.kind.training, ref: TaskRef(task: job.ref.task, index: job.ref.index))
                switch executor!.compute(taskJob, meta: parameters, step: Wire.BatchID.step(of: batch), worker: "coordinator") {
                case .success(let o):
                    let r = Wire.Result(slot: slot, kind: job.kind, queryLoss: o.stats.queryLoss, queryDice: o.stats.queryDice,
                                        supportLoss: o.stats.supportLoss, objective: o.stats.objective, seconds: o.seconds)
                    done(slot, .success((r, o.gradient)))
                case .failure(let error):
                    done(slot, .failure(.init("\(error)")))
                }
            } catch {
                done(slot, .failure(.init("\(error)")))
            }
        }
    }
}

/// The run cannot go on: no worker is ready and none can come (`abandonWhenIdle`).
public struct NoWorkerCanCome: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "no worker can compute the run's tasks: \(reason)" }
}
