import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Training
import Transport
import Wire

/// A worker process: the I/O loop that carries out `WorkerSession`'s actions, and
/// `threads` compute threads that run one task each at a time.
///
/// One I/O thread (the caller of `run()`) owns the DEALER socket, since ZeroMQ sockets are
/// not thread-safe. Compute threads hand results back over an inproc PUSH/PULL pair, which
/// the I/O thread polls together with the DEALER, so heartbeats continue while every thread
/// computes. All protocol decisions are the session's; this type only does I/O.
public final class WorkerNode: @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: String
        public var threads: Int
        public var name: String
        public var dataRoot: String?
        /// Exit after this many seconds without hearing from a coordinator (0: never).
        public var idleTimeout: Double = 0
        public var security: SecurityConfig?
        /// Exit when the process with this id stops being this process's parent (a local
        /// worker outliving its coordinator).
        public var parentProcess: Int32?
        /// Inner steps whose passes this worker keeps, whatever the run's setting: memory for
        /// speed on this machine, never other results (nil: the run's).
        public var keptSteps: Int?
        public init(endpoint: String, threads: Int, name: String) {
            self.endpoint = endpoint
            self.threads = threads
            self.name = name
        }
    }

    /// What a run needs on this worker once its data is loaded.
    struct Prepared {
        let spec: RunSpec
        let source: TaskSource
        let runID: Wire.RunID
    }

    let options: Options
    let logger: Logger
    let context = ZMQContext()
    let resultsEndpoint = "inproc://medmaml-results-\(UUID().uuidString)"
    private let queue = WorkQueue()
    private let prepared = Locked<Prepared?>(nil)
    /// The run's metrics, made when WELCOME names the run (every series carries its id).
    private let monitor = Locked<WorkerMetrics?>(nil)
    /// Events from background threads (data loaded) for the I/O loop.
    private let inbox = Locked<[WorkerSession.Event]>([])

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
        let clock = MonotonicClock()
        var window = BusyWindow()
        guard let push = try? ZMQSocket(context, .push), (try? push.connect(resultsEndpoint)) != nil else {
            logger.critical("a compute thread cannot reach the I/O thread", metadata: ["thread": "\(index)"])
            return
        }
        defer { push.close() }
        var executor: TaskExecutor?
        while let (item, meta) = queue.next() {
            guard let prepared = prepared.get() else { continue }
            let started = clock.now
            var failedTask = true
            let task = item.task
            func failed(_ reason: String) -> [[UInt8]] {
                Wire.Message(.failed, run: prepared.runID, batch: item.batch, body: Wire.Notice(reason: reason, slot: task.slot)).encode()
            }
            var frames: [[UInt8]]
            if let meta {
                do {
                    if executor?.run.runID != prepared.spec.runID {
                        executor = try TaskExecutor(run: prepared.spec, source: prepared.source)
                    }
                    let job = TaskJob(kind: task.kind.training, ref: TaskRef(task: task.ref.task, index: task.ref.index))
                    switch executor!.compute(job, meta: meta, step: Wire.BatchID.step(of: item.batch), worker: options.name) {
                    case .success(let outcome):
                        let s = outcome.stats
                        let result = Wire.Result(slot: task.slot, kind: task.kind, queryLoss: s.queryLoss, queryDice: s.queryDice,
                                                 supportLoss: s.supportLoss, objective: s.objective, seconds: outcome.seconds)
                        frames = Wire.Message(.result, run: prepared.runID, batch: item.batch, body: result, payload: outcome.gradient).encode()
                        failedTask = false
                    case .failure(let error):
                        frames = failed("\(error)")
                    }
                } catch {
                    frames = failed("\(error)")
                }
            } else {
                frames = failed("no parameters for batch \(item.batch)")
            }
            window.add(start: started, end: clock.now)
            monitor.get()?.taskDone(thread: index, seconds: clock.now - started, fraction: window.fraction(now: clock.now), failed: failedTask)
            // The generation travels with the result, so results of an older connection are dropped.
            _ = try? push.send([withUnsafeBytes(of: Int64(item.generation).littleEndian) { Array($0) }] + frames)
        }
    }

    // MARK: I/O loop

    /// Runs until the coordinator shuts the worker down, refuses it, the idle timeout passes,
    /// or a signal arrives.
    public func run() -> WorkerSession.Exit {
        let pull: ZMQSocket
        do {
            pull = try ZMQSocket(context, .pull)
            try pull.bind(resultsEndpoint)
        } catch {
            return .failed("\(error)")
        }
        let threads = startComputeThreads()
        var connections = 0
        var connection: (dealer: ZMQSocket, monitor: ZMQSocket)?
        defer {
            queue.stop()
            for t in threads { while !t.isFinished { usleep(1000) } }
            connection?.dealer.close()
            connection?.monitor.close()
            pull.close()
        }
        let clock = MonotonicClock()
        var settings = WorkerSession.Settings(name: options.name, threads: options.threads)
        settings.idleTimeout = options.idleTimeout
        settings.secure = options.security != nil
        var session = WorkerSession(settings: settings, now: clock.now)
        var exit: WorkerSession.Exit?
        var unsent = 0

        /// Sends on the current connection; a message that cannot go (no route yet, a full
        /// queue) is counted and reported, not silently lost: the coordinator's deadlines
        /// recover the task.
        func send(_ frames: [[UInt8]], what: String) {
            guard let dealer = connection?.dealer else { return }
            var failure: String?
            do { if try !dealer.send(frames, dontWait: true) { failure = "the connection cannot take it now" } } catch { failure = "\(error)" }
            guard let failure else { return }
            unsent += 1
            if unsent == 1 || unsent % 100 == 0 {
                logger.warning("a message to the coordinator could not be sent", metadata: ["what": "\(what)", "reason": "\(failure)", "unsent": "\(unsent)"])
            }
        }

        func perform(_ actions: [WorkerSession.Action]) {
            for action in actions {
                switch action {
                case .connect(let generation):
                    connections += 1
                    if connections > 1 { monitor.get()?.reconnects.increment() }
                    connection?.dealer.close()
                    connection?.monitor.close()
                    connection = nil
                    do {
                        connection = try connect()
                    } catch {
                        exit = .failed("cannot connect to \(options.endpoint): \(error)")
                    }
                    logger.debug("connecting", metadata: ["endpoint": "\(options.endpoint)", "generation": "\(generation)"])
                case .disconnect:
                    connection?.dealer.close()
                    connection?.monitor.close()
                    connection = nil
                case .send(let message):
                    send(message.encode(), what: "\(message.command)")
                case .forward(let frames):
                    send(frames, what: "a task's result")
                case .load(let wire):
                    monitor.withLock { metrics in
                        guard metrics == nil else { return }
                        let made = WorkerMetrics(run: wire.runID, threads: options.threads)
                        made.reconnects.increment(by: connections - 1)
                        metrics = made
                    }
                    load(wire)
                case .storeParameters(let batch, let values):
                    queue.store(batch: batch, values)
                case .enqueue(let batch, let task, let generation):
                    queue.enqueue(WorkQueue.Item(generation: generation, batch: batch, task: task))
                case .clearQueue:
                    queue.clear()
                case .log(let level, let message, let metadata):
                    logger.log(level: level, message, metadata: metadata)
                case .exit(let e):
                    exit = e
                }
            }
        }

        perform(session.handle(.start, now: clock.now))
        while exit == nil {
            if let sig = StopSignal.received {
                perform(session.handle(.signal(sig), now: clock.now))
                break
            }
            if let parent = options.parentProcess, getppid() != parent {
                logger.notice("the coordinator that started this worker is gone; exiting")
                perform(session.handle(.signal(SIGTERM), now: clock.now))
                break
            }
            for event in inbox.withLock({ events in defer { events = [] }; return events }) {
                perform(session.handle(event, now: clock.now))
            }
            let sockets = [pull] + (connection.map { [$0.dealer, $0.monitor] } ?? [])
            let readable: [Bool]
            do { readable = try ZMQSocket.poll(sockets, timeoutMilliseconds: 100) } catch {
                // Never spin: wait as a poll would have, and say why.
                logger.error("polling the sockets failed", metadata: ["error": "\(error)"])
                usleep(100_000)
                continue
            }
            if readable[0] {
                while let frames = try? pull.receive(dontWait: true), frames.count >= 2 {
                    let generation = frames[0].withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
                    perform(session.handle(.computed(generation: generation, frames: Array(frames.dropFirst())), now: clock.now))
                }
            }
            if let c = connection, readable.count == 3 {
                if readable[2] {
                    // Until an event closes the connection (a refusal, a try again).
                    while exit == nil, connection?.monitor === c.monitor, let event = ZMQSocket.readHandshakeEvent(c.monitor) {
                        perform(session.handle(.handshake(Self.handshake(event)), now: clock.now))
                    }
                }
                if readable[1] {
                    while exit == nil, connection?.dealer === c.dealer,
                          let frames = try? c.dealer.receive(dontWait: true, maxFrames: Wire.maximumFrames) {
                        perform(session.handle(.received(frames), now: clock.now))
                    }
                }
            }
            if exit == nil { perform(session.handle(.tick, now: clock.now)) }
        }
        return exit ?? .failed("the worker stopped without a reason")
    }

    /// A fresh DEALER with a fresh routing id, connected, and a monitor of its handshakes.
    private func connect() throws -> (dealer: ZMQSocket, monitor: ZMQSocket) {
        let dealer = try ZMQSocket(context, .dealer)
        let monitor = try dealer.monitorHandshakes(context)
        var g = SystemRandomNumberGenerator()
        try dealer.set(.routingID, bytes: [0x4D] + (0..<15).map { _ in UInt8.random(in: 0...255, using: &g) })
        try dealer.set(.maximumMessageSize, Int64(Wire.maximumMessageSize(parameterCount: Wire.maximumParameterCount)))
        if let security = options.security { try security.configureClient(dealer) }
        try dealer.connect(options.endpoint)
        return (dealer, monitor)
    }

    private static func handshake(_ event: ZMQSocket.HandshakeEvent) -> WorkerSession.Handshake {
        switch event {
        case .succeeded: .succeeded
        case .refusedAuthentication: .refusedAuthentication
        case .failedProtocol, .failedOther: .failed
        }
    }

    /// Loads the run's data and computes the numerics fingerprint on a background thread, then
    /// posts `loaded` to the I/O loop.
    private func load(_ wire: Wire.RunSpecification) {
        let options = self.options, logger = self.logger
        prepared.set(nil)
        Thread.detachNewThread { [self] in
            let result: Result<WorkerSession.Loaded, WorkerSession.LoadFailure>
            do {
                let spec = try RunSpec(wire: wire)
                guard let runID = Wire.RunID(hex: spec.runID) else { throw WireError.malformed("bad run id") }
                // The run's numerics before anything computes; a process that already computes
                // with others starts again with the run's.
                var numerics = spec.numerics
                if let own = options.keptSteps { numerics.keptSteps = own }
                do { try numerics.apply() } catch let failure as NumericsSettings.Failure {
                    if case .alreadyApplied = failure {
                        throw WorkerSession.LoadFailure("this process computes with other numerics than the run's (\(numerics))",
                                                        restartWith: numerics)
                    }
                    throw failure
                }
                logger.info("loading data", metadata: ["dataset": "\(spec.dataset.name)", "run": "\(spec.runID)",
                                                       "keep_steps": "\(ActivationMemory.description)"])
                let source = try spec.dataset.openOnWorker(dataRoot: options.dataRoot, split: spec.split, logger: logger)
                let fingerprint = try NumericsCheck.fingerprint(run: spec, source: source)
                prepared.set(Prepared(spec: spec, source: source, runID: runID))
                let ready = Wire.Ready(datasetFingerprint: source.identity.fingerprint, numericsFingerprint: fingerprint,
                                       kernel: BLAS.kernelDescription)
                result = .success(.init(ready: ready, parameterCount: try MetaLayout(config: spec.training.meta).count))
            } catch let failure as WorkerSession.LoadFailure {
                result = .failure(failure)
            } catch {
                result = .failure(.init("cannot prepare the run's data: \(error)"))
            }
            inbox.withLock { $0.append(.loaded(runID: wire.runID, result)) }
        }
    }
}

extension Wire.TaskKind {
    /// The training layer's name for the same kind of task.
    var training: TaskKind {
        switch self {
        case .metaGradient: .metaGradient
        case .evaluate: .evaluate
        }
    }
}

extension TaskKind {
    /// The wire's name for the same kind of task.
    var wire: Wire.TaskKind {
        switch self {
        case .metaGradient: .metaGradient
        case .evaluate: .evaluate
        }
    }
}
