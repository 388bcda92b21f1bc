import Engine
import Logging
import Wire

/// A worker's side of the protocol as a pure state machine, like `Scheduler` on the
/// coordinator's: events (a message, a tick, data loaded, a result computed, a handshake
/// outcome, a signal) go in with the current time; actions (connect, send, load the run's
/// data, queue a task, exit) come out, and `WorkerNode`'s I/O loop performs them. Time is
/// injected, so reconnection and expiry are tested without sleeping.
///
/// Reliability is the ZeroMQ guide's Paranoid Pirate worker: heartbeats both ways; when the
/// coordinator falls silent for the heartbeat expiry the worker drops its connection and
/// reconnects with a fresh routing id after a delay that doubles up to a maximum, and
/// registers again (a restarted coordinator asks it to, with RESET). Data loading runs off
/// the I/O thread, so a slow load never looks like a dead worker.
public struct WorkerSession {
    public struct Settings: Sendable {
        public var name: String
        public var threads: Int
        /// Exit after this many seconds without hearing from a coordinator (0: never).
        public var idleTimeout: Double = 0
        /// Whether the connection uses CURVE (for the message when handshakes fail).
        public var secure = false
        /// The liveness times until a coordinator's WELCOME brings its own heartbeat interval.
        public var heartbeat = Wire.Heartbeat(interval: Wire.heartbeatInterval)
        /// Consecutive failed security handshakes after which the worker gives up: the
        /// coordinator does not accept this worker's key, this is not the coordinator's key, or
        /// something between closes every connection. Each failure is tried again after the
        /// reconnect delay, so the worker gives up 3 s after the first at the default heartbeat.
        public var handshakeFailureLimit = 3
        public init(name: String, threads: Int) {
            self.name = name
            self.threads = threads
        }
    }

    /// How a security handshake with the coordinator ended.
    public enum Handshake: Sendable, Equatable {
        case succeeded
        /// The coordinator refused this worker's key (ZAP said no).
        case refusedAuthentication
        /// The handshake broke: wrong server key, or one side without CURVE.
        case failed
    }

    public enum Event: Sendable {
        /// Begin: connect for the first time.
        case start
        /// A message from the coordinator (frames as received).
        case received([[UInt8]])
        /// Time passed.
        case tick
        /// The run's data finished loading in the background: what READY reports and the
        /// model's parameter count, or why not.
        case loaded(runID: String, Result<Loaded, LoadFailure>)
        /// A compute thread finished a task of connection `generation` (RESULT or FAILED frames).
        case computed(generation: Int, frames: [[UInt8]])
        case handshake(Handshake)
        /// SIGINT or SIGTERM.
        case signal(Int32)
    }

    /// What loading a run's data found: the READY to send, and how many parameters every
    /// PARAMS payload of the run must hold.
    public struct Loaded: Sendable, Equatable {
        public var ready: Wire.Ready
        public var parameterCount: Int
        public init(ready: Wire.Ready, parameterCount: Int) {
            self.ready = ready
            self.parameterCount = parameterCount
        }
    }

    /// Why a run's data could not be loaded on this worker.
    public struct LoadFailure: Error, Sendable, Equatable {
        public var reason: String
        /// Set when this process computes with other numerics than the run's and must start
        /// again with the run's (a worker that served another run).
        public var restartWith: NumericsSettings?
        public init(_ reason: String, restartWith: NumericsSettings? = nil) {
            self.reason = reason
            self.restartWith = restartWith
        }
    }

    public enum Action: Sendable {
        /// Close any connection and open a fresh one (new routing id); `generation` numbers it.
        case connect(generation: Int)
        case disconnect
        case send(Wire.Message)
        /// Send a compute thread's result as it is.
        case forward([[UInt8]])
        /// Load the run's data and compute its numerics fingerprint in the background, then
        /// report `Event.loaded`.
        case load(Wire.RunSpecification)
        /// Parameters of a batch: tasks still queued from another batch become stale.
        case storeParameters(batch: UInt64, [Float])
        /// Queue a task for the compute threads.
        case enqueue(batch: UInt64, Wire.Task, generation: Int)
        /// Drop every queued task (a new connection, or the coordinator asked to register again).
        case clearQueue
        case log(Logger.Level, Logger.Message, Logger.Metadata)
        case exit(Exit)
    }

    public enum Exit: Equatable, Sendable {
        case shutdown(String)
        case refused(String)
        case idle
        case signal(Int32)
        case failed(String)
        /// Start this worker again with the run's numerics: this process already computes
        /// with others, which its engine cannot change.
        case restart(NumericsSettings)
    }

    /// The state of the run's data on this worker (kept across connections).
    enum DataState: Equatable {
        case none
        case loading(runID: String)
        case loaded(runID: String, Loaded)
    }

    struct Connection {
        var generation: Int
        /// The run, once WELCOME arrived (all zeros before).
        var run = Wire.RunID.none
        var lastHeard: Double
        var lastSent: Double
        var hadContact = false
        var readySent = false
    }

    enum State {
        case idle
        case connected(Connection)
        /// Waiting to reconnect at this time.
        case waiting(until: Double)
        case exited(Exit)
    }

    public let settings: Settings
    private(set) var state = State.idle
    private var data = DataState.none
    private var generation = 0
    private var delay: Double
    /// The last time any coordinator was heard (for the idle timeout).
    private var lastHeardAnyone: Double
    /// The run this worker last belonged to: a coordinator of another run refuses it.
    private(set) var previousRun: String?
    private var handshakeFailures = 0
    /// The liveness times in force: the settings' until a WELCOME names the coordinator's.
    public private(set) var heartbeat: Wire.Heartbeat

    public init(settings: Settings, now: Double) {
        self.settings = settings
        heartbeat = settings.heartbeat
        delay = heartbeat.reconnectDelay
        lastHeardAnyone = now
    }

    /// The connection generation results must carry to be forwarded.
    public var currentGeneration: Int? {
        if case .connected(let c) = state { c.generation } else { nil }
    }

    public var hasExited: Bool {
        if case .exited = state { true } else { false }
    }

    // MARK: Events

    public mutating func handle(_ event: Event, now: Double) -> [Action] {
        if case .exited = state { return [] }
        switch event {
        case .start: return connect(now: now)
        case .tick: return tick(now: now)
        case .received(let frames): return receive(frames, now: now)
        case .loaded(let runID, let result): return loaded(runID: runID, result, now: now)
        case .computed(let g, let frames):
            guard case .connected(var c) = state, c.generation == g else { return [] }
            c.lastSent = now
            state = .connected(c)
            return [.forward(frames)]
        case .handshake(let outcome): return handshake(outcome, now: now)
        case .signal(let sig):
            var actions: [Action] = []
            if case .connected(let c) = state { actions.append(.send(Wire.Message(.bye, run: c.run, body: Wire.Empty()))) }
            return actions + exit(.signal(sig))
        }
    }

    // MARK: Handlers

    private mutating func connect(now: Double) -> [Action] {
        generation += 1
        state = .connected(Connection(generation: generation, lastHeard: now, lastSent: now))
        return [.clearQueue, .connect(generation: generation), .send(hello)]
    }

    private var hello: Wire.Message {
        Wire.Message(.hello, run: .none, body: Wire.Hello(name: settings.name, threads: settings.threads, previousRun: previousRun))
    }

    private mutating func exit(_ e: Exit) -> [Action] {
        state = .exited(e)
        return [.disconnect, .exit(e)]
    }

    /// Drops the connection and waits the reconnect delay, which doubles up to its maximum for
    /// the next time (Paranoid Pirate), saying so.
    private mutating func reconnectAfterDelay(now: Double, _ level: Logger.Level, _ message: Logger.Message) -> [Action] {
        state = .waiting(until: now + delay)
        let actions: [Action] = [.disconnect, .log(level, message, ["delay.s": "\(delay)"])]
        delay = min(delay * 2, heartbeat.reconnectDelayMaximum)
        return actions
    }

    private mutating func tick(now: Double) -> [Action] {
        switch state {
        case .idle, .exited:
            return []
        case .waiting(let until):
            if settings.idleTimeout > 0 && now - lastHeardAnyone > settings.idleTimeout { return exit(.idle) }
            return now >= until ? connect(now: now) : []
        case .connected(var c):
            if now - c.lastHeard > heartbeat.expiry {
                // Paranoid Pirate: the coordinator is gone; reconnect after a growing delay.
                if c.hadContact { delay = heartbeat.reconnectDelay }
                if settings.idleTimeout > 0 && now - lastHeardAnyone > settings.idleTimeout { return exit(.idle) }
                return reconnectAfterDelay(now: now, .warning, "coordinator silent; reconnecting")
            }
            if settings.idleTimeout > 0 && now - lastHeardAnyone > settings.idleTimeout { return exit(.idle) }
            guard c.hadContact, now - c.lastSent >= heartbeat.interval else { return [] }
            c.lastSent = now
            state = .connected(c)
            return [.send(Wire.Message(.heartbeat, run: c.run, body: Wire.Empty()))]
        }
    }

    private mutating func receive(_ frames: [[UInt8]], now: Double) -> [Action] {
        guard case .connected(var c) = state else { return [] }
        let message: Wire.Message
        do {
            message = try Wire.Message(frames: frames, maximumPayload: Wire.maximumParameterCount)
        } catch {
            return [.log(.warning, "dropped a malformed message from the coordinator", ["reason": "\(error)"])]
        }
        c.lastHeard = now
        c.hadContact = true
        lastHeardAnyone = now
        state = .connected(c)
        switch message.command {
        case .welcome:
            guard let welcome = try? message.decode(Wire.Welcome.self), let id = Wire.RunID(hex: welcome.run.runID) else {
                return [.log(.warning, "malformed welcome dropped", [:])]
            }
            guard welcome.heartbeat.isFinite, Wire.heartbeatIntervalRange.contains(welcome.heartbeat) else {
                return [.log(.warning, "malformed welcome dropped", ["reason": "heartbeat \(welcome.heartbeat) s is outside \(Wire.heartbeatIntervalRange)"])]
            }
            heartbeat = Wire.Heartbeat(interval: welcome.heartbeat)
            c.run = id
            c.readySent = false
            state = .connected(c)
            previousRun = id.description
            switch data {
            case .loading(let r) where r == welcome.run.runID:
                return []
            case .loaded(let r, _) where r == welcome.run.runID:
                // Same run, already loaded (re-registration after a reconnect).
                return sendReady(now: now)
            default:
                data = .loading(runID: welcome.run.runID)
                return [.load(welcome.run)]
            }
        case .refused:
            return exit(.refused((try? message.decode(Wire.Notice.self).reason) ?? "no reason given"))
        case .shutdown:
            return exit(.shutdown((try? message.decode(Wire.Notice.self).reason) ?? ""))
        case .reset:
            return [.log(.info, "coordinator asked this worker to register again", [:]), .clearQueue, .send(hello)]
        case .params:
            // Only parameters of this run, of exactly the model's size and finite, ever reach a
            // compute thread (which reads the model's full length from them).
            guard message.run == c.run, case .loaded(let runID, let loaded) = data, runID == c.run.description,
                  let values = message.payload, values.count == loaded.parameterCount, values.allSatisfy(\.isFinite)
            else {
                return [.log(.warning, "invalid parameters dropped",
                             ["batch": "\(message.batch)", "values": "\(message.payload?.count ?? 0)"])]
            }
            return [.storeParameters(batch: message.batch, values)]
        case .task:
            guard message.run == c.run, let task = try? message.decode(Wire.Task.self) else {
                return [.log(.warning, "invalid task dropped", ["batch": "\(message.batch)"])]
            }
            return [.enqueue(batch: message.batch, task, generation: c.generation)]
        case .heartbeat:
            return []
        case .hello, .ready, .result, .failed, .bye:
            return [.log(.warning, "unexpected command from the coordinator", ["command": "\(message.command)"])]
        }
    }

    /// READY, if the run's data is loaded and the coordinator is waiting for it.
    private mutating func sendReady(now: Double) -> [Action] {
        guard case .connected(var c) = state, !c.readySent, case .loaded(let runID, let loaded) = data,
              runID == c.run.description
        else { return [] }
        c.readySent = true
        c.lastSent = now
        state = .connected(c)
        return [.send(Wire.Message(.ready, run: c.run, body: loaded.ready))]
    }

    private mutating func loaded(runID: String, _ result: Result<Loaded, LoadFailure>, now: Double) -> [Action] {
        guard data == .loading(runID: runID) else { return [] }
        switch result {
        case .success(let loaded):
            data = .loaded(runID: runID, loaded)
            return sendReady(now: now)
        case .failure(let failure):
            data = .none
            var actions: [Action] = []
            if case .connected(let c) = state { actions.append(.send(Wire.Message(.bye, run: c.run, body: Wire.Empty()))) }
            return actions + exit(failure.restartWith.map { .restart($0) } ?? .failed(failure.reason))
        }
    }

    private mutating func handshake(_ outcome: Handshake, now: Double) -> [Action] {
        // Events of a connection already closed are not tries of their own.
        guard case .connected = state else { return [] }
        guard outcome != .succeeded else {
            handshakeFailures = 0
            delay = heartbeat.reconnectDelay
            return []
        }
        handshakeFailures += 1
        let actions: [Action] = [.log(.warning, "security handshake with the coordinator failed", ["event": "\(outcome)"])]
        guard handshakeFailures >= settings.handshakeFailureLimit else {
            // libzmq does not try again after a ZAP refusal or some broken handshakes, and a
            // broken one may be a relay or tunnel whose coordinator is not up yet (it closes
            // the connection as a wrong key does): the worker closes the connection and tries
            // again after the reconnect delay, growing as after silence.
            return actions + reconnectAfterDelay(now: now, .info, "trying again")
        }
        let why: String
        switch outcome {
        case .refusedAuthentication: why = "the coordinator does not accept this worker's key (not in its authorized keys)"
        default: why = settings.secure
            ? "the handshake fails: --coordinator-key is not the coordinator's public key, the coordinator runs without encryption, or something between closes every connection"
            : "the handshake fails: the coordinator requires CURVE encryption (give --secret-key and --coordinator-key), or something between closes every connection"
        }
        return actions + exit(.refused(why))
    }
}
