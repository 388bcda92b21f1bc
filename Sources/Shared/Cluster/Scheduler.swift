import Core
import Foundation
import Logging
import Wire

/// The coordinator's bookkeeping as a pure state machine (the swift-nio pattern): who is
/// alive, which task is where, what to resend, which result to trust. Events (a received
/// message, a clock tick, an arbiter's verdict) go in with the current time; actions
/// (messages to send, log lines, a completed batch) come out, and the socket loop performs
/// them. Time is injected, so tests need no sleeping.
///
/// Reliability follows the ZeroMQ guide's Paranoid Pirate and Majordomo patterns and
/// MapReduce's backup tasks: heartbeats both ways, a silent worker's tasks are reassigned, an
/// outstanding task older than a deadline derived from observed task times gets a backup copy
/// on an idle worker (the first acceptable result wins), and a task unanswered for long is
/// presumed lost and requeued.
///
/// Trust rests on determinism: every slot's result is a pure function of the batch's
/// parameters and the task, so honest copies agree bit for bit. A copy is accepted on its own
/// when it looks normal; a suspicious one (non-finite, or a norm far outside the run's recent
/// ones) is accepted only when a second computation by another identity agrees with it bit
/// for bit, and a sample of slots (`verifyFraction`) is always computed twice. Copies that
/// disagree get a third opinion, from another identity or, when none can give one, from the
/// coordinator itself (`arbitrate`); an identity whose copy differs from the accepted result
/// is quarantined. Identities are CURVE public keys when security is on (so a quarantined key
/// stays out across reconnections), routing ids otherwise.
///
/// Latency is hidden by sending a worker up to `prefetch` tasks per thread beyond those it can
/// run at once, so a thread finds its next task waiting instead of paying a round trip for it.
/// Prefetching happens only while every thread is sure to get more work anyway (pending plus
/// queued tasks at least the ready threads), so the end of a batch is never left waiting on a
/// task queued behind another while a thread elsewhere idles.
public struct Scheduler {
    public typealias WorkerID = [UInt8]

    /// The protocol's scheduling numbers (`Wire`), adjustable for tests and benchmarks.
    public struct Settings: Sendable {
        /// The run's heartbeat interval and the liveness times derived from it (expiry,
        /// initial backup deadline, farewell period); sent to every worker in WELCOME.
        public var heartbeat = Wire.Heartbeat(interval: Wire.heartbeatInterval)
        public var minimumDeadline = Wire.minimumDeadline
        public var deadlineFactor = Wire.deadlineFactor
        public var presumedLostFactor = Wire.presumedLostFactor
        public var maximumFaults = Wire.maximumFaults
        /// Tasks per thread sent ahead, queued on the worker (0: one task per thread at a time).
        public var prefetch = Wire.defaultPrefetch
        /// Fraction of slots computed by two identities and compared bit for bit.
        public var verifyFraction = 0.0
        public var outlierFactor = Wire.outlierFactor
        /// The norm of an honest meta-gradient of this run (the numerics check's), so outliers
        /// are recognised from the first step.
        public var referenceNorm: Double?
        /// Meta-parameter count: the size every meta-gradient must have.
        public var parameterCount: Int
        public init(parameterCount: Int) { self.parameterCount = parameterCount }
    }

    public enum Phase: String, Sendable { case loading, ready }

    public struct Worker: Sendable {
        public var name: String
        /// Who the worker is: its CURVE public key, or its routing id in plaintext.
        public var identity: String
        public var threads: Int
        public var phase: Phase
        public var lastSeen: Double
        public var lastSent: Double
        /// The batch whose parameters this worker holds.
        public var paramsBatch: UInt64?
        /// Slot -> time it was sent, or (for a task sent ahead) the time it moved to a thread.
        public var outstanding: [Int: Double] = [:]
        /// Slots sent ahead and (presumably) still queued on the worker, in the order sent: the
        /// worker starts tasks in the order they arrive.
        public var queued: [Int] = []
        public var completed = 0
        var running: Int { outstanding.count - queued.count }
        var free: Int { phase == .ready ? max(0, threads - running) : 0 }

        /// Forgets `slot`; a queued task moves to the thread that finishing `slot` freed, and
        /// its clock starts now.
        mutating func finish(_ slot: Int, now: Double) -> Double? {
            guard let sentAt = outstanding.removeValue(forKey: slot) else { return nil }
            queued.removeAll { $0 == slot }
            while running < threads, !queued.isEmpty {
                outstanding[queued.removeFirst()] = now
            }
            return sentAt
        }
    }

    /// One slot of a batch: what to compute.
    public struct Job: Sendable, Equatable {
        public var kind: Wire.TaskKind
        public var ref: Wire.TaskReference
        public init(kind: Wire.TaskKind, ref: Wire.TaskReference) {
            self.kind = kind
            self.ref = ref
        }
    }

    /// A slot's accepted result.
    public struct Outcome: Sendable {
        public var result: Wire.Result
        public var gradient: [Float]?
        /// Name of the worker whose copy was used ("coordinator" for an arbiter's result).
        public var worker: String
    }

    public enum Action: Sendable {
        case send(WorkerID, Wire.Message)
        /// Send the parameters of the current batch (the driver holds them).
        case sendParams(WorkerID, batch: UInt64)
        case log(Logger.Level, Logger.Message, Logger.Metadata)
        /// Compute this slot on the coordinator and report it with `arbitrated`: copies
        /// disagree, or a suspicious one needs a second opinion, and no other worker can give it.
        case arbitrate(batch: UInt64, slot: Int, Job)
        /// Every slot has its result; outcomes in slot order.
        case batchComplete(batch: UInt64, [Outcome])
        /// The run cannot go on.
        case fatal(String)
    }

    /// Counts of everything dropped or redone, for logs, metrics and tests.
    public struct Counters: Sendable, Equatable {
        public var malformed = 0, stale = 0, duplicate = 0, unknown = 0, refused = 0
        public var faults = 0, quarantined = 0, reassigned = 0, backups = 0, lost = 0, presumedLost = 0
        /// Copies held back for a second opinion, slots arbitrated by the coordinator, slots
        /// verified by two identities.
        public var suspicious = 0, arbitrated = 0, verified = 0
    }

    /// One computed copy of a slot's result.
    struct Copy {
        var identity: String
        var worker: String
        var result: Wire.Result
        var gradient: [Float]?
        /// Why it cannot be accepted on its own, if so.
        var suspicion: String?

        /// Bitwise equality of everything computed (not the time it took).
        func agrees(with other: Copy) -> Bool {
            func bits(_ r: Wire.Result) -> [UInt32] {
                [r.queryLoss.bitPattern, r.queryDice.bitPattern, r.supportLoss.bitPattern, r.objective.bitPattern]
            }
            guard result.kind == other.result.kind, bits(result) == bits(other.result) else { return false }
            switch (gradient, other.gradient) {
            case (nil, nil): return true
            case (let a?, let b?): return a.count == b.count && a.elementsEqual(b) { $0.bitPattern == $1.bitPattern }
            default: return false
            }
        }
    }

    /// The batch being computed and where each of its slots stands.
    struct Batch {
        var id: UInt64
        var jobs: [Job]
        /// Slots waiting for a worker, in slot order.
        var pending: [Int]
        /// Slot -> workers holding a copy.
        var assigned: [Int: Set<WorkerID>] = [:]
        var outcomes: [Int: Outcome] = [:]
        /// Copies received and not yet accepted, per slot.
        var copies: [Int: [Copy]] = [:]
        /// Slot -> identities that could not compute it, and why.
        var failures: [Int: [String: String]] = [:]
        /// Identities that may not compute a slot (again): they answered or failed it.
        var excluded: [Int: Set<String>] = [:]
        /// Slots computed twice by design (`verifyFraction`).
        var verify: Set<Int>
        /// Slots the coordinator is computing.
        var arbitrating: Set<Int> = []

        init(id: UInt64, jobs: [Job], verify: Set<Int>) {
            self.id = id
            self.jobs = jobs
            self.verify = verify
            pending = Array(jobs.indices)
        }

        var isComplete: Bool { outcomes.count == jobs.count }

        /// Puts `slot` back in the queue unless it is settled, being arbitrated, held by a
        /// worker or already queued; says whether it did.
        mutating func requeue(_ slot: Int) -> Bool {
            guard outcomes[slot] == nil, !arbitrating.contains(slot), (assigned[slot] ?? []).isEmpty, !pending.contains(slot) else {
                return false
            }
            pending.append(slot)
            pending.sort()
            return true
        }
    }

    /// Whether a batch is being computed. A handler that works on the running batch borrows
    /// it (`withBatch`): while it does, the state is `lent`, which keeps the batch's id visible.
    enum BatchState {
        case idle
        case running(Batch)
        case lent(id: UInt64)
    }

    public let settings: Settings
    public let run: Wire.RunID
    let welcome: Wire.Welcome
    let datasetFingerprint: String
    let numericsFingerprint: String

    public internal(set) var workers: [WorkerID: Worker] = [:]
    /// Quarantined identities: refused whatever connection they come back on.
    var quarantined: Set<String> = []
    /// Bad results per identity (malformed copies, false failures).
    var faults: [String: Int] = [:]
    public internal(set) var counters = Counters()
    var state = BatchState.idle
    /// Workers declared dead (silent) or disconnected that have not been heard since, by
    /// connection (a stopped process that wakes up speaks on its old one) with their names (a
    /// restarted one registers again on a new connection under its name): once the run is
    /// over, the coordinator waits a while for them to hear so.
    var missing: [WorkerID: String] = [:]
    /// Why the run is over, once it is: every peer that speaks from then on is told so.
    var over: String?
    /// Observed task times (seconds), for the backup deadline.
    var taskTimes: [Double] = []
    /// Norms of recently accepted meta-gradients, in slot order batch after batch.
    var acceptedNorms: [Double] = []

    /// `welcome`'s heartbeat is set to the settings' interval, so workers keep the times the
    /// scheduler expects of them.
    public init(run: Wire.RunID, welcome: Wire.Welcome, datasetFingerprint: String, numericsFingerprint: String, settings: Settings) {
        self.run = run
        var welcome = welcome
        welcome.heartbeat = settings.heartbeat.interval
        self.welcome = welcome
        self.datasetFingerprint = datasetFingerprint
        self.numericsFingerprint = numericsFingerprint
        self.settings = settings
    }

    /// Runs `body` on the running batch, taken out of the state for the duration, and puts it
    /// back unless it completed. Nothing happens when no batch is running.
    mutating func withBatch(_ body: (inout Scheduler, inout Batch) -> [Action]) -> [Action] {
        guard case .running(var b) = state else { return [] }
        state = .lent(id: b.id)
        let actions = body(&self, &b)
        state = b.isComplete ? .idle : .running(b)
        return actions
    }

    // MARK: Queries

    /// The id of the batch being computed, if any.
    public var currentBatch: UInt64? {
        switch state {
        case .idle: nil
        case .running(let b): b.id
        case .lent(let id): id
        }
    }
    public var readyWorkers: Int { workers.values.filter { $0.phase == .ready }.count }
    public var readyThreads: Int { workers.values.filter { $0.phase == .ready }.reduce(0) { $0 + $1.threads } }
    public var connectedWorkers: Int { workers.count }
    public var quarantinedIdentities: Int { quarantined.count }
    public var remainingSlots: Int {
        if case .running(let b) = state { b.jobs.count - b.outcomes.count } else { 0 }
    }
    /// Workers that lost their connection and have not registered again (see `missing`).
    public var missingWorkers: Int { Set(missing.values).count }
    /// Tasks sent and not answered, over all workers.
    public var outstandingTasks: Int { workers.values.reduce(0) { $0 + $1.outstanding.count } }

    // MARK: Events

    /// Starts a batch of jobs (slots 0..<n) computed at the parameters of batch `id`.
    public mutating func startBatch(id: UInt64, jobs: [Job], now: Double) -> [Action] {
        guard case .idle = state else { preconditionFailure("a batch is already running") }
        precondition(!jobs.isEmpty, "empty batch")
        let verify = Set(jobs.indices.filter { Self.isVerified(run: run, batch: id, slot: $0, fraction: settings.verifyFraction) })
        state = .running(Batch(id: id, jobs: jobs, verify: verify))
        return dispatch(now: now)
    }

    /// Handles a message from `id` (frames without the ROUTER's identity frame); `identity` is
    /// the peer's CURVE public key when security is on.
    public mutating func receive(from id: WorkerID, identity: String? = nil, frames: [[UInt8]], now: Double) -> [Action] {
        let who = identity ?? Self.hex(id)
        if quarantined.contains(who) {
            return [.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "quarantined")))]
        }
        let message: Wire.Message
        do {
            message = try Wire.Message(frames: frames, maximumPayload: settings.parameterCount)
        } catch {
            counters.malformed += 1
            return [.log(.warning, "dropped a malformed message", peer(id, ["reason": "\(error)"]))]
        }
        if message.command == .hello { return hello(id, identity: who, message, now: now) }
        guard message.run == run else {
            counters.refused += 1
            let metadata = peer(id, ["run": "\(message.run)"])
            let actions = remove(id)
            return [.send(id, Wire.Message(.refused, run: message.run, body: Wire.Notice(reason: "this coordinator runs another run (\(run)); worker of run \(message.run) refused"))),
                    .log(.warning, "refused a worker of another run", metadata)] + actions + dispatch(now: now)
        }
        if let over { return farewell(id, name: missing[id], over) }
        guard workers[id] != nil else {
            counters.unknown += 1
            return [.send(id, Wire.Message(.reset, run: run, body: Wire.Notice(reason: "unknown worker; register again")))]
        }
        workers[id]?.lastSeen = now
        var actions: [Action]
        switch message.command {
        case .ready: actions = ready(id, message, now: now)
        case .result: actions = result(id, message, now: now)
        case .failed: actions = failed(id, message, now: now)
        case .heartbeat: actions = []
        case .bye:
            actions = [.log(.info, "worker left", peer(id))] + remove(id)
        case .hello, .welcome, .refused, .params, .task, .reset, .shutdown:
            counters.malformed += 1
            actions = [.log(.warning, "unexpected command", peer(id, ["command": "\(message.command)"]))]
        }
        return actions + dispatch(now: now)
    }

    /// Why the coordinator could not compute a slot.
    public struct ArbitrationFailure: Error, Sendable {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    /// Tells every worker the run is over, and from now on every worker that comes back (see
    /// `missingWorkers`) or speaks at all.
    public mutating func shutdownAll(reason: String) -> [Action] {
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        workers = [:]
        over = reason
        return ids.map { .send($0, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: reason))) }
    }

    /// Tells a peer that spoke after the end of the run that the run is over; it is no longer
    /// missing.
    mutating func farewell(_ id: WorkerID, name: String?, _ reason: String) -> [Action] {
        let shutdown = Action.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: reason)))
        // Logged for the workers waited for only: any other peer could flood the log.
        guard let name else { return [shutdown] }
        missing = missing.filter { $0.value != name }
        return [shutdown, .log(.info, "told a worker that came back that the run is over", peer(id, ["worker": "\(name)"]))]
    }

    /// Log metadata naming a peer: its worker name if registered, and its routing id.
    func peer(_ id: WorkerID, _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var m = extra
        m["worker.id"] = "\(Self.hex(id.prefix(8)))"
        if let name = workers[id]?.name, m["worker"] == nil { m["worker"] = "\(name)" }
        if let b = currentBatch { m["batch"] = "\(b)" }
        return m
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// A peer's text, cut to a length fit for a log line.
    static func cut(_ text: String, _ limit: Int = Wire.maximumReasonLength) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "..."
    }
}
