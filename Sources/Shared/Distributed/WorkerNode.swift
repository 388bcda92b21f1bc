import Foundation
import Logging

/// A worker process's engine: connects to a coordinator, loads the run's data, and computes
/// tasks on `threads` compute threads, one task each at a time.
///
/// One I/O thread (the caller of `run()`) owns the DEALER socket, since ZeroMQ sockets are
/// not thread-safe. Compute threads hand results back over an inproc PUSH/PULL pair, which
/// the I/O thread polls together with the DEALER, so heartbeats continue while every thread
/// computes. When the coordinator falls silent for the heartbeat expiry the worker closes
/// its socket and reconnects with a growing delay, registering again (Paranoid Pirate); a
/// restarted coordinator asks it to register too (RESET). Data loading also runs off the I/O
/// thread, so a slow load never looks like a dead worker.
public final class WorkerNode: @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: String
        public var threads: Int
        public var name: String
        public var dataRoot: String?
        /// Exit after this many seconds without hearing from a coordinator (0: never).
        public var idleTimeout: Double = 0
        public var security: SecurityConfig?
        public init(endpoint: String, threads: Int, name: String) {
            self.endpoint = endpoint
            self.threads = threads
            self.name = name
        }
    }

    public enum Exit: Equatable, Sendable {
        case shutdown(String)
        case refused(String)
        case idle
        case signal(Int32)
        case failed(String)
    }

    let options: Options
    let logger: Logger
    let context = ZMQContext()
    let resultsEndpoint = "inproc://medmaml-results-\(UUID().uuidString)"

    // Shared with compute threads, under `lock`.
    private let lock = NSCondition()
    private var queue: [(generation: Int, batch: UInt64, task: Wire.Task)] = []
    private var stopping = false
    private var generation = 0
    private var params: [UInt64: [Float]] = [:]
    private var prepared: Prepared?
    private var loading: (spec: RunSpec, error: String?, ready: Wire.Ready?)?

    /// What a run needs on this worker once its data is loaded.
    struct Prepared {
        let spec: RunSpec
        let source: TaskSource
        let runID: Wire.RunID
    }

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    // MARK: Compute threads

    private func startComputeThreads() -> [Thread] {
        (0..<options.threads).map { i in
            let t = Thread { [self] in self.computeLoop(i) }
            t.name = "medmaml-worker-compute-\(i)"
            t.stackSize = 8 << 20
            t.start()
            return t
        }
    }

    private func computeLoop(_ index: Int) {
        guard let push = try? ZMQSocket(context, .push), (try? push.connect(resultsEndpoint)) != nil else {
            logger.critical("compute thread \(index) cannot reach the I/O thread")
            return
        }
        defer { push.close() }
        var learners: (spec: String, training: MetaLearner<Float>, evaluation: MetaLearner<Float>)?
        while true {
            lock.lock()
            while queue.isEmpty && !stopping { lock.wait() }
            if stopping { lock.unlock(); return }
            let job = queue.removeFirst()
            let meta = params[job.batch]
            let prepared = self.prepared
            let current = generation
            lock.unlock()
            guard job.generation == current, let prepared else { continue }
            let runID = prepared.runID
            var frames: [[UInt8]]
            if let meta {
                do {
                    if learners?.spec != prepared.spec.runID {
                        let t = try MetaLearner<Float>(config: prepared.spec.training.meta)
                        let e = prepared.spec.evaluationConfig == prepared.spec.training.meta ? t : try MetaLearner<Float>(config: prepared.spec.evaluationConfig)
                        learners = (prepared.spec.runID, t, e)
                    }
                    // Training batches are numbered by the outer step; evaluation batches have bit 62 set.
                    let step = Int(job.batch & ((1 << 62) - 1))
                    let result = TaskExecutor.run(
                        job: Scheduler.Job(kind: job.task.kind, ref: job.task.ref), slot: job.task.slot, meta: meta,
                        step: step, spec: prepared.spec, source: prepared.source,
                        training: learners!.training, evaluation: learners!.evaluation)
                    switch result {
                    case .success(let (r, gradient)):
                        frames = Wire.Message(.result, run: runID, step: job.batch, body: r, payload: gradient).encode()
                    case .failure(let error):
                        frames = Wire.Message(.failed, run: runID, step: job.batch, body: Wire.Notice(reason: "\(error)", slot: job.task.slot)).encode()
                    }
                } catch {
                    frames = Wire.Message(.failed, run: runID, step: job.batch, body: Wire.Notice(reason: "\(error)", slot: job.task.slot)).encode()
                }
            } else {
                frames = Wire.Message(.failed, run: runID, step: job.batch,
                                      body: Wire.Notice(reason: "no parameters for batch \(job.batch)", slot: job.task.slot)).encode()
            }
            // The generation travels with the result so results of an older connection are dropped.
            _ = try? push.send([withUnsafeBytes(of: Int64(job.generation).littleEndian) { Array($0) }] + frames)
        }
    }

    // MARK: I/O loop

    /// Runs until the coordinator shuts the worker down, refuses it, the idle timeout passes,
    /// or a signal arrives.
    public func run() -> Exit {
        let pull: ZMQSocket
        do {
            pull = try ZMQSocket(context, .pull)
            try pull.bind(resultsEndpoint)
        } catch {
            return .failed("\(error)")
        }
        let threads = startComputeThreads()
        defer {
            lock.withLock { stopping = true; lock.broadcast() }
            for t in threads { while !t.isFinished { usleep(1000) } }
            pull.close()
        }
        let clock = MonotonicClock()
        var delay = Wire.reconnectDelay
        var lastHeardAnyone = clock.now
        var previousRun: String?
        while true {
            if let sig = StopSignal.received { return .signal(sig) }
            let outcome = session(pull: pull, clock: clock, previousRun: &previousRun, lastHeard: &lastHeardAnyone)
            switch outcome {
            case .exit(let e): return e
            case .lost(let hadContact):
                if hadContact { delay = Wire.reconnectDelay }
                if options.idleTimeout > 0 && clock.now - lastHeardAnyone > options.idleTimeout { return .idle }
                logger.warning("coordinator silent; reconnecting", metadata: ["delay.s": "\(delay)", "endpoint": "\(options.endpoint)"])
                let until = clock.now + delay
                while clock.now < until {
                    if let sig = StopSignal.received { return .signal(sig) }
                    usleep(50_000)
                }
                delay = min(delay * 2, Wire.reconnectDelayMaximum)
            }
        }
    }

    private enum SessionEnd { case exit(Exit), lost(hadContact: Bool) }

    /// One connection: register, serve, until the coordinator is lost or ends the worker.
    private var handshakeFailures = 0
    /// Consecutive failed security handshakes after which the worker gives up: the
    /// coordinator does not accept this worker's key, or this is not the coordinator's key.
    static let handshakeFailureLimit = 3

    private func session(pull: ZMQSocket, clock: MonotonicClock, previousRun: inout String?, lastHeard: inout Double) -> SessionEnd {
        let generation = lock.withLock { () -> Int in
            self.generation += 1
            queue.removeAll()
            return self.generation
        }
        let dealer: ZMQSocket
        let monitor: ZMQSocket
        do {
            dealer = try ZMQSocket(context, .dealer)
            monitor = try dealer.monitorHandshakes(context)
            var g = SystemRandomNumberGenerator()
            try dealer.set(ZMQSocket.optionRoutingID, bytes: [0x4D] + (0..<15).map { _ in UInt8.random(in: 0...255, using: &g) })
            try dealer.set(ZMQSocket.optionMaxMessageSize, Int64(1 << 30))
            if let security = options.security { try security.configureClient(dealer) }
            try dealer.connect(options.endpoint)
        } catch {
            return .exit(.failed("cannot connect to \(options.endpoint): \(error)"))
        }
        defer {
            dealer.close()
            monitor.close()
        }
        var run = Wire.RunID.none
        func send(_ m: Wire.Message) { _ = try? dealer.send(m.encode(), dontWait: true) }
        send(Wire.Message(.hello, run: .none, body: Wire.Hello(name: options.name, threads: options.threads, previousRun: previousRun)))
        var sessionHeard = clock.now, lastSent = clock.now, hadContact = false, readySent = false
        while true {
            if let sig = StopSignal.received {
                send(Wire.Message(.bye, run: run, body: Wire.Empty()))
                return .exit(.signal(sig))
            }
            let now = clock.now
            if now - sessionHeard > Wire.heartbeatExpiry { return .lost(hadContact: hadContact) }
            if options.idleTimeout > 0 && now - lastHeard > options.idleTimeout { return .exit(.idle) }
            if now - lastSent >= Wire.heartbeatInterval && hadContact {
                send(Wire.Message(.heartbeat, run: run, body: Wire.Empty()))
                lastSent = now
            }
            // Data loaded in the background: report readiness (or the failure).
            if !readySent, let l = lock.withLock({ loading }), l.spec.runID == run.description {
                if let error = l.error {
                    send(Wire.Message(.bye, run: run, body: Wire.Empty()))
                    return .exit(.failed(error))
                }
                if let ready = l.ready {
                    send(Wire.Message(.ready, run: run, body: ready))
                    readySent = true
                    lastSent = now
                }
            }
            guard let readable = try? ZMQSocket.poll([dealer, pull, monitor], timeoutMilliseconds: 100) else { continue }
            if readable[2] {
                while let event = ZMQSocket.readHandshakeEvent(monitor) {
                    switch event {
                    case .succeeded:
                        handshakeFailures = 0
                    case .refusedAuthentication, .failedProtocol, .failedOther:
                        handshakeFailures += 1
                        logger.warning("security handshake with the coordinator failed", metadata: ["event": "\(event)"])
                        if handshakeFailures >= Self.handshakeFailureLimit {
                            let why: String
                            switch event {
                            case .refusedAuthentication: why = "the coordinator does not accept this worker's key (not in its authorized keys)"
                            default: why = options.security == nil
                                ? "the coordinator requires CURVE encryption: give --secret-key and --coordinator-key"
                                : "the handshake fails: --coordinator-key is not the coordinator's public key, or the coordinator runs without encryption"
                            }
                            return .exit(.refused(why))
                        }
                    }
                }
            }
            if readable[1] {
                while let frames = try? pull.receive(dontWait: true), frames.count >= 2 {
                    let g = frames[0].withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
                    if g == generation { _ = try? dealer.send(Array(frames.dropFirst()), dontWait: true); lastSent = clock.now }
                }
            }
            guard readable[0] else { continue }
            while let frames = try? dealer.receive(dontWait: true, maxFrames: 4) {
                let message: Wire.Message
                do {
                    message = try Wire.Message(frames: frames, maximumPayload: 1 << 28)
                } catch {
                    logger.warning("dropped a malformed message from the coordinator: \(error)")
                    continue
                }
                sessionHeard = clock.now
                lastHeard = sessionHeard
                hadContact = true
                switch message.command {
                case .welcome:
                    guard let welcome = try? message.decode(Wire.Welcome.self), let id = Wire.RunID(hex: welcome.run.runID) else {
                        logger.warning("malformed welcome dropped")
                        continue
                    }
                    run = id
                    previousRun = id.description
                    readySent = false
                    prepare(welcome.run, runID: id)
                case .refused:
                    let reason = (try? message.decode(Wire.Notice.self).reason) ?? "no reason given"
                    return .exit(.refused(reason))
                case .shutdown:
                    return .exit(.shutdown((try? message.decode(Wire.Notice.self).reason) ?? ""))
                case .reset:
                    logger.info("coordinator asked this worker to register again")
                    lock.withLock { queue.removeAll() }
                    send(Wire.Message(.hello, run: .none, body: Wire.Hello(name: options.name, threads: options.threads, previousRun: previousRun)))
                case .params:
                    guard message.run == run, let values = message.payload, values.allSatisfy(\.isFinite) else {
                        logger.warning("invalid parameters dropped")
                        continue
                    }
                    lock.withLock {
                        // The coordinator runs one batch at a time: parameters of a new batch make
                        // any task still queued from an older one (a copy finished elsewhere) stale.
                        queue.removeAll { $0.batch != message.step }
                        params[message.step] = values
                        // Keep the two newest batches' parameters (a training and an evaluation batch).
                        for old in params.keys.sorted().dropLast(2) where old != message.step { params[old] = nil }
                    }
                case .task:
                    guard message.run == run, let task = try? message.decode(Wire.Task.self) else {
                        logger.warning("invalid task dropped")
                        continue
                    }
                    lock.withLock {
                        queue.append((generation, message.step, task))
                        lock.signal()
                    }
                case .heartbeat:
                    break
                case .hello, .ready, .result, .failed, .bye:
                    logger.warning("unexpected \(message.command) from the coordinator")
                }
            }
        }
    }

    /// Loads the run's data and computes the numerics fingerprint on a background thread.
    private func prepare(_ spec: RunSpec, runID: Wire.RunID) {
        if let p = lock.withLock({ prepared }), p.spec.runID == spec.runID, let l = lock.withLock({ loading }), l.ready != nil {
            return   // same run, already loaded (re-registration after a reconnect)
        }
        lock.withLock { loading = (spec, nil, nil); prepared = nil }
        let options = self.options, logger = self.logger
        Thread.detachNewThread { [self] in
            do {
                logger.info("loading data", metadata: ["dataset": "\(spec.dataset.name)", "run": "\(spec.runID)"])
                let source = try spec.dataset.openOnWorker(dataRoot: options.dataRoot, logger: logger)
                let numerics = try NumericsCheck.fingerprint(run: spec, source: source)
                let ready = Wire.Ready(datasetFingerprint: source.identity.fingerprint, numericsFingerprint: numerics, kernel: BLAS.kernelDescription)
                lock.withLock {
                    prepared = Prepared(spec: spec, source: source, runID: runID)
                    loading = (spec, nil, ready)
                }
            } catch {
                lock.withLock { loading = (spec, "cannot prepare the run's data: \(error)", nil) }
            }
        }
    }
}
