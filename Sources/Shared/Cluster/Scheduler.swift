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
        public var heartbeatInterval = Wire.heartbeatInterval
        public var heartbeatExpiry = Wire.heartbeatExpiry
        public var minimumDeadline = Wire.minimumDeadline
        public var initialDeadline = Wire.initialDeadline
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
    }

    enum BatchState {
        case idle
        case running(Batch)
    }

    public let settings: Settings
    public let run: Wire.RunID
    let welcome: Wire.Welcome
    let datasetFingerprint: String
    let numericsFingerprint: String

    public private(set) var workers: [WorkerID: Worker] = [:]
    /// Quarantined identities: refused whatever connection they come back on.
    private var quarantined: Set<String> = []
    /// Bad results per identity (malformed copies, false failures).
    private var faults: [String: Int] = [:]
    public private(set) var counters = Counters()
    private var state = BatchState.idle
    /// Observed task times (seconds), for the backup deadline.
    private var taskTimes: [Double] = []
    /// Norms of recently accepted meta-gradients, in slot order batch after batch.
    private var acceptedNorms: [Double] = []

    public init(run: Wire.RunID, welcome: Wire.Welcome, datasetFingerprint: String, numericsFingerprint: String, settings: Settings) {
        self.run = run
        self.welcome = welcome
        self.datasetFingerprint = datasetFingerprint
        self.numericsFingerprint = numericsFingerprint
        self.settings = settings
    }

    /// The running batch, mutated in place.
    private var batch: Batch? {
        get {
            if case .running(let b) = state { b } else { nil }
        }
        _modify {
            var current: Batch?
            if case .running(let b) = state { current = b }
            state = .idle
            defer { state = current.map(BatchState.running) ?? .idle }
            yield &current
        }
    }

    // MARK: Queries

    /// The id of the batch being computed, if any.
    public var currentBatch: UInt64? { batch?.id }
    public var readyWorkers: Int { workers.values.filter { $0.phase == .ready }.count }
    public var readyThreads: Int { workers.values.filter { $0.phase == .ready }.reduce(0) { $0 + $1.threads } }
    public var connectedWorkers: Int { workers.count }
    public var quarantinedIdentities: Int { quarantined.count }
    public var remainingSlots: Int { batch.map { $0.jobs.count - $0.outcomes.count } ?? 0 }
    /// Tasks sent and not answered, over all workers.
    public var outstandingTasks: Int { workers.values.reduce(0) { $0 + $1.outstanding.count } }
    /// The deadline after which an outstanding task gets a backup copy: a multiple of the lower
    /// quartile of recent task times, so that slow workers cannot push it up step after step.
    public var deadline: Double {
        guard !taskTimes.isEmpty else { return max(settings.minimumDeadline, settings.initialDeadline) }
        let sorted = taskTimes.suffix(64).sorted()
        return max(settings.minimumDeadline, settings.deadlineFactor * sorted[sorted.count / 4])
    }

    // MARK: Events

    /// Starts a batch of jobs (slots 0..<n) computed at the parameters of batch `id`.
    public mutating func startBatch(id: UInt64, jobs: [Job], now: Double) -> [Action] {
        guard case .idle = state else { preconditionFailure("a batch is already running") }
        precondition(!jobs.isEmpty, "empty batch")
        let verify = Set(jobs.indices.filter { Self.isVerified(run: run, batch: id, slot: $0, fraction: settings.verifyFraction) })
        state = .running(Batch(id: id, jobs: jobs, verify: verify))
        return dispatch(now: now)
    }

    /// Whether a slot is computed twice: a deterministic draw from the run, batch and slot.
    static func isVerified(run: Wire.RunID, batch: UInt64, slot: Int, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        var key = run.bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        key ^= 0x7665_7269_6679   // "verify"
        var rng = RandomStream(key: [key, batch, UInt64(slot)])
        return rng.unitDouble() < fraction
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
            let actions = remove(id, now: now)
            return [.send(id, Wire.Message(.refused, run: message.run, body: Wire.Notice(reason: "this coordinator runs another run (\(run)); worker of run \(message.run) refused"))),
                    .log(.warning, "refused a worker of another run", metadata)] + actions + dispatch(now: now)
        }
        guard workers[id] != nil else {
            counters.unknown += 1
            return [.send(id, Wire.Message(.reset, run: run, body: Wire.Notice(reason: "unknown worker; register again")))]
        }
        workers[id]!.lastSeen = now
        var actions: [Action]
        switch message.command {
        case .ready: actions = ready(id, message, now: now)
        case .result: actions = result(id, message, now: now)
        case .failed: actions = failed(id, message, now: now)
        case .heartbeat: actions = []
        case .bye:
            actions = [.log(.info, "worker left", peer(id))] + remove(id, now: now)
        case .hello, .welcome, .refused, .params, .task, .reset, .shutdown:
            counters.malformed += 1
            actions = [.log(.warning, "unexpected command", peer(id, ["command": "\(message.command)"]))]
        }
        return actions + dispatch(now: now)
    }

    /// The coordinator's own computation of a slot (see `Action.arbitrate`): the result is
    /// final. A copy that differs from it quarantines its identity; a slot the coordinator
    /// cannot compute either ends the run (a data problem, not a machine problem).
    public mutating func arbitrated(batch id: UInt64, slot: Int, _ outcome: Result<(Wire.Result, [Float]?), ArbitrationFailure>,
                                    now: Double) -> [Action] {
        guard let b = batch, b.id == id, b.arbitrating.contains(slot), b.outcomes[slot] == nil else { return [] }
        batch!.arbitrating.remove(slot)
        switch outcome {
        case .failure(let failure):
            return [.fatal("task slot \(slot) (task \(b.jobs[slot].ref.task), sample \(b.jobs[slot].ref.index)) cannot be computed, on the workers or on the coordinator: \(failure.reason)")]
        case .success(let (result, gradient)):
            counters.arbitrated += 1
            var actions: [Action] = [.log(.notice, "slot settled by the coordinator's own computation", ["batch": "\(id)", "slot": "\(slot)"])]
            var r = result
            r.slot = slot
            let copy = Copy(identity: "coordinator", worker: "coordinator", result: r, gradient: gradient, suspicion: nil)
            for (identity, reason) in b.failures[slot] ?? [:] {
                actions += fault(identity: identity, "claimed it could not compute slot \(slot) (\(Self.cut(reason))), which the coordinator computed")
            }
            return actions + accept(copy, slot: slot, now: now) + dispatch(now: now)
        }
    }

    /// Why the coordinator could not compute a slot.
    public struct ArbitrationFailure: Error, Sendable {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    /// Heartbeats, expiry of silent workers, dispatch and backup copies.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        for id in workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let w = workers[id] else { continue }
            if now - w.lastSeen > settings.heartbeatExpiry {
                counters.lost += 1
                actions.append(.log(.warning, "worker silent: declared dead, its tasks reassigned",
                                    peer(id, ["silent.s": "\(Int(now - w.lastSeen))", "tasks": "\(w.outstanding.count)"])))
                actions += remove(id, now: now)
                continue
            }
            if now - w.lastSent >= settings.heartbeatInterval {
                workers[id]!.lastSent = now
                actions.append(.send(id, Wire.Message(.heartbeat, run: run, body: Wire.Empty())))
            }
        }
        return actions + dispatch(now: now)
    }

    /// Forgets every worker (their connections were dropped), requeueing their tasks; each is
    /// told to register again on its next message.
    public mutating func disconnectAll(now: Double) -> [Action] {
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        var actions: [Action] = [.log(.warning, "every worker disconnected; their tasks are requeued", ["workers": "\(ids.count)"])]
        for id in ids { actions += remove(id, now: now) }
        return actions + dispatch(now: now)
    }

    /// Tells every worker the run is over.
    public mutating func shutdownAll(reason: String) -> [Action] {
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        workers = [:]
        return ids.map { .send($0, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: reason))) }
    }

    // MARK: Handlers

    private mutating func hello(_ id: WorkerID, identity: String, _ message: Wire.Message, now: Double) -> [Action] {
        let hello: Wire.Hello
        do { hello = try message.decode(Wire.Hello.self) } catch {
            counters.malformed += 1
            return [.log(.warning, "dropped a malformed hello", peer(id, ["reason": "\(error)"]))]
        }
        guard !hello.name.isEmpty, hello.name.utf8.count <= Wire.maximumNameLength,
              hello.name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            counters.refused += 1
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: "worker names must be 1...\(Wire.maximumNameLength) printable bytes"))),
                    .log(.warning, "refused a worker with a bad name", peer(id, ["name.bytes": "\(hello.name.utf8.count)"]))]
        }
        if let previous = hello.previousRun, previous != run.description {
            counters.refused += 1
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: "the worker belongs to run \(Self.cut(previous)); this coordinator runs \(run)"))),
                    .log(.warning, "refused a worker of another run", peer(id, ["worker": "\(hello.name)", "run": "\(Self.cut(previous))"]))]
        }
        guard (1...1024).contains(hello.threads) else {
            counters.malformed += 1
            return [.log(.warning, "dropped a hello with a bad thread count", peer(id, ["worker": "\(hello.name)", "threads": "\(hello.threads)"]))]
        }
        var actions: [Action] = []
        if workers[id] != nil { actions += remove(id, now: now) }
        workers[id] = Worker(name: hello.name, identity: identity, threads: hello.threads, phase: .loading, lastSeen: now, lastSent: now)
        return actions + [.send(id, Wire.Message(.welcome, run: run, body: welcome)),
                          .log(.info, "worker registering", peer(id, ["threads": "\(hello.threads)"]))]
    }

    private mutating func ready(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let r = try? message.decode(Wire.Ready.self) else {
            counters.malformed += 1
            return [.log(.warning, "malformed ready", peer(id))]
        }
        var reason: String?
        if r.datasetFingerprint != datasetFingerprint {
            reason = "dataset fingerprint \(Self.cut(r.datasetFingerprint, 16)) differs from the coordinator's \(datasetFingerprint.prefix(16)): the worker's data is not the run's data"
        } else if r.numericsFingerprint != numericsFingerprint {
            reason = "numerics differ from the coordinator's (worker kernels: \(Self.cut(r.kernel))); results would not be bitwise reproducible. Pin the kernels on every machine (OPENBLAS_CORETYPE, ONEDNN_MAX_CPU_ISA; the same MEDMAML_GEMM and MEDMAML_CONV) or use identical machines, and run the coordinator's MedMAML version everywhere (an older worker may fingerprint less of the run)"
        }
        if let reason {
            counters.refused += 1
            let metadata = peer(id, ["reason": "\(reason)"])
            let actions = remove(id, now: now)
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: reason))),
                    .log(.error, "refused a worker", metadata)] + actions
        }
        workers[id]!.phase = .ready
        return [.log(.info, "worker ready", peer(id, ["threads": "\(workers[id]!.threads)", "workers.ready": "\(readyWorkers)"]))]
    }

    private mutating func result(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let r = try? message.decode(Wire.Result.self) else {
            counters.malformed += 1
            return [.log(.warning, "malformed result", peer(id))]
        }
        guard let current = batch, message.batch == current.id, current.jobs.indices.contains(r.slot) else {
            // A copy from a finished batch: its outstanding entry was cleared with the batch.
            counters.stale += 1
            return [.log(.debug, "stale result", peer(id, ["batch": "\(message.batch)", "slot": "\(r.slot)"]))]
        }
        guard let sentAt = workers[id]!.finish(r.slot, now: now) else {
            counters.duplicate += 1
            return [.log(.warning, "result for a slot not assigned to this worker dropped", peer(id, ["slot": "\(r.slot)"]))]
        }
        batch!.assigned[r.slot]?.remove(id)
        let identity = workers[id]!.identity
        batch!.excluded[r.slot, default: []].insert(identity)
        let job = current.jobs[r.slot]
        if let problem = Self.malformation(r, payload: message.payload, job: job, parameterCount: settings.parameterCount) {
            requeue(r.slot)
            return fault(identity: identity, "bad result for slot \(r.slot): \(problem)")
        }
        let copy = Copy(identity: identity, worker: workers[id]!.name, result: r, gradient: message.payload,
                        suspicion: suspicion(r, gradient: message.payload))
        if let accepted = current.outcomes[r.slot] {
            // A late copy (a backup, a verification): it must agree with what was accepted.
            counters.duplicate += 1
            let acceptedCopy = Copy(identity: "", worker: accepted.worker, result: accepted.result, gradient: accepted.gradient, suspicion: nil)
            return copy.agrees(with: acceptedCopy) ? [] : quarantine(identity: identity, "its result for slot \(r.slot) differs bit for bit from the accepted one (results are deterministic)")
        }
        workers[id]!.completed += 1
        taskTimes.append(now - sentAt)
        batch!.copies[r.slot, default: []].append(copy)
        var actions: [Action] = []
        if let why = copy.suspicion {
            counters.suspicious += 1
            actions.append(.log(.warning, "suspicious result held for a second opinion", peer(id, ["slot": "\(r.slot)", "why": "\(why)"])))
        }
        return actions + settle(r.slot, now: now)
    }

    /// What makes a result unusable whatever its values: the wrong kind, a missing, extra or
    /// misshapen payload, a Dice outside [0, 1], a negative loss or time.
    static func malformation(_ r: Wire.Result, payload: [Float]?, job: Job, parameterCount: Int) -> String? {
        if r.kind != job.kind { return "result kind \(r.kind) for a \(job.kind) task" }
        switch job.kind {
        case .metaGradient:
            guard let g = payload else { return "meta-gradient result without a payload" }
            if g.count != parameterCount { return "gradient of \(g.count) values, expected \(parameterCount)" }
        case .evaluate:
            if payload != nil { return "evaluation result with a payload" }
        }
        if r.queryDice.isFinite && !(0...1).contains(r.queryDice) { return "Dice \(r.queryDice) outside [0, 1]" }
        for (name, value) in [("query loss", r.queryLoss), ("support loss", r.supportLoss), ("objective", r.objective)] where value < 0 {
            return "negative \(name) \(value)"
        }
        if !(r.seconds.isFinite && r.seconds >= 0) { return "time \(r.seconds)" }
        return nil
    }

    /// Why a well-formed copy may not be accepted on its own: non-finite values, or a
    /// meta-gradient norm far outside the run's recent ones.
    private func suspicion(_ r: Wire.Result, gradient: [Float]?) -> String? {
        guard [r.queryLoss, r.queryDice, r.supportLoss, r.objective].allSatisfy(\.isFinite) else { return "non-finite loss or Dice" }
        guard let g = gradient else { return nil }
        guard g.allSatisfy(\.isFinite) else { return "non-finite gradient" }
        let norms = acceptedNorms + (settings.referenceNorm.map { [$0] } ?? [])
        guard !norms.isEmpty else { return nil }
        let norm = Self.norm(g)
        let median = norms.sorted()[norms.count / 2]
        return norm > settings.outlierFactor * max(median, .leastNormalMagnitude) || !norm.isFinite
            ? "gradient norm \(norm) is over \(Int(settings.outlierFactor)) times the recent median \(median)" : nil
    }

    static func norm(_ g: [Float]) -> Double {
        var s = 0.0
        for v in g { s += Double(v) * Double(v) }
        return s.squareRoot()
    }

    /// Accepts a slot's result when the copies allow it, or asks for another opinion.
    private mutating func settle(_ slot: Int, now: Double) -> [Action] {
        guard let b = batch, b.outcomes[slot] == nil else { return [] }
        let copies = b.copies[slot] ?? []
        // Two identities agree bit for bit: settled, whatever the values.
        for (i, a) in copies.enumerated() {
            for other in copies[(i + 1)...] where other.identity != a.identity && a.agrees(with: other) {
                if b.verify.contains(slot) { counters.verified += 1 }
                return accept(a, slot: slot, now: now)
            }
        }
        if copies.count == 1, copies[0].suspicion == nil, !b.verify.contains(slot) {
            return accept(copies[0], slot: slot, now: now)
        }
        // Another opinion is needed: from an identity that has not answered, else the arbiter.
        requeue(slot)
        return []
    }

    /// Records `copy` as the slot's result; identities whose copies differ are quarantined.
    private mutating func accept(_ copy: Copy, slot: Int, now: Double) -> [Action] {
        var actions: [Action] = []
        for other in batch!.copies[slot] ?? [] where !other.agrees(with: copy) {
            actions += quarantine(identity: other.identity, "its result for slot \(slot) differs bit for bit from the accepted one (results are deterministic)")
        }
        batch!.copies[slot] = nil
        batch!.pending.removeAll { $0 == slot }
        batch!.outcomes[slot] = Outcome(result: copy.result, gradient: copy.gradient, worker: copy.worker)
        guard batch!.isComplete else { return actions }
        let done = batch!
        // Copies still running elsewhere will report stale results; their threads count as
        // free again now (a worker queues what it cannot start yet).
        for w in workers.keys {
            workers[w]!.outstanding = [:]
            workers[w]!.queued = []
        }
        state = .idle
        let outcomes = (0..<done.jobs.count).map { done.outcomes[$0]! }
        for o in outcomes {
            if let g = o.gradient, g.allSatisfy(\.isFinite) { acceptedNorms.append(Self.norm(g)) }
        }
        acceptedNorms = Array(acceptedNorms.suffix(64))
        return actions + [.batchComplete(batch: done.id, outcomes)]
    }

    private mutating func failed(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let n = try? message.decode(Wire.Notice.self), let slot = n.slot, let b = batch, message.batch == b.id,
              b.outcomes[slot] == nil, workers[id]!.finish(slot, now: now) != nil
        else {
            counters.stale += 1
            return []
        }
        let identity = workers[id]!.identity
        batch!.assigned[slot]?.remove(id)
        batch!.failures[slot, default: [:]][identity] = Self.cut(n.reason)
        batch!.excluded[slot, default: []].insert(identity)
        requeue(slot)
        return [.log(.warning, "worker could not compute a slot; trying another worker", peer(id, ["slot": "\(slot)", "reason": "\(Self.cut(n.reason))"]))]
    }

    /// A bad result or a false claim: repeated ones quarantine the identity.
    private mutating func fault(identity: String, _ problem: String) -> [Action] {
        counters.faults += 1
        faults[identity, default: 0] += 1
        var actions: [Action] = [.log(.warning, "fault", ["identity": "\(identity.prefix(16))", "problem": "\(problem)"])]
        if faults[identity]! >= settings.maximumFaults {
            actions += quarantine(identity: identity, "\(settings.maximumFaults) bad results")
        }
        return actions
    }

    /// Shuts out an identity for the rest of the run, on every connection it has or makes.
    private mutating func quarantine(identity: String, _ why: String) -> [Action] {
        guard identity != "coordinator", quarantined.insert(identity).inserted else { return [] }
        counters.quarantined += 1
        var actions: [Action] = [.log(.error, "worker quarantined", ["identity": "\(identity.prefix(16))", "why": "\(why)"])]
        for (id, w) in workers where w.identity == identity {
            actions += remove(id, now: w.lastSeen)
            actions.append(.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "quarantined: \(why)"))))
        }
        return actions
    }

    /// Forgets a worker and puts its unfinished tasks back in the queue.
    private mutating func remove(_ id: WorkerID, now: Double) -> [Action] {
        guard let w = workers.removeValue(forKey: id) else { return [] }
        for slot in w.outstanding.keys.sorted() {
            batch?.assigned[slot]?.remove(id)
            requeue(slot)
        }
        return []
    }

    private mutating func requeue(_ slot: Int) {
        guard let b = batch, b.outcomes[slot] == nil, !b.arbitrating.contains(slot), (b.assigned[slot] ?? []).isEmpty,
              !b.pending.contains(slot) else { return }
        counters.reassigned += 1
        batch!.pending.append(slot)
        batch!.pending.sort()
    }

    /// Gives pending tasks to ready workers with free threads; sends to the arbiter what no
    /// connected identity may compute; once none is pending, gives idle workers backup copies
    /// of tasks outstanding longer than the deadline.
    private mutating func dispatch(now: Double) -> [Action] {
        guard let current = batch?.id else { return [] }
        var actions: [Action] = []
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        func eligible(_ slot: Int, _ id: WorkerID) -> Bool { !(batch!.excluded[slot]?.contains(workers[id]!.identity) ?? false) }
        func send(_ slot: Int, to id: WorkerID, ahead: Bool = false) {
            if workers[id]!.paramsBatch != current {
                workers[id]!.paramsBatch = current
                actions.append(.sendParams(id, batch: current))
            }
            workers[id]!.outstanding[slot] = now
            if ahead { workers[id]!.queued.append(slot) }
            workers[id]!.lastSent = now
            batch!.assigned[slot, default: []].insert(id)
            let job = batch!.jobs[slot]
            actions.append(.send(id, Wire.Message(.task, run: run, batch: current, body: Wire.Task(slot: slot, kind: job.kind, ref: job.ref))))
        }
        // A slot that already has copies or failures, and that no connected identity may
        // compute, goes to the coordinator: waiting could be forever. So does a slot that two
        // identities could not compute: a data problem shows there too, and ends the run.
        for slot in batch!.pending where !(batch!.copies[slot] ?? []).isEmpty || !(batch!.failures[slot] ?? [:]).isEmpty {
            guard (batch!.failures[slot]?.count ?? 0) >= 2 || !ids.contains(where: { eligible(slot, $0) }) else { continue }
            batch!.pending.removeAll { $0 == slot }
            batch!.arbitrating.insert(slot)
            actions.append(.log(.info, "no other worker can give a second opinion: the coordinator computes the slot",
                                ["batch": "\(current)", "slot": "\(slot)"]))
            actions.append(.arbitrate(batch: current, slot: slot, batch!.jobs[slot]))
        }
        for id in ids {
            while workers[id]!.free > 0, let index = batch!.pending.firstIndex(where: { eligible($0, id) }) {
                send(batch!.pending.remove(at: index), to: id)
            }
        }
        // Tasks sent ahead, one at a time to the worker with the fewest queued per thread, while
        // pending plus queued tasks cover every ready thread (the sum does not change here).
        let ready = ids.filter { workers[$0]!.phase == .ready }
        let threads = ready.reduce(0) { $0 + workers[$1]!.threads }
        if settings.prefetch > 0, batch!.pending.count + ready.reduce(0, { $0 + workers[$1]!.queued.count }) >= threads {
            func room(_ id: WorkerID) -> Bool { workers[id]!.queued.count < settings.prefetch * workers[id]!.threads }
            func load(_ id: WorkerID) -> Double { Double(workers[id]!.queued.count) / Double(workers[id]!.threads) }
            while !batch!.pending.isEmpty {
                let candidates = ready.filter { id in room(id) && batch!.pending.contains { eligible($0, id) } }
                guard let id = candidates.min(by: { load($0) < load($1) }),
                      let index = batch!.pending.firstIndex(where: { eligible($0, id) }) else { break }
                send(batch!.pending.remove(at: index), to: id, ahead: true)
            }
        }
        guard batch!.pending.isEmpty else { return actions }
        let limit = deadline
        // A task outstanding for `presumedLostFactor` deadlines is presumed lost (its result
        // dropped on the way, say): it goes back to the queue and frees its holder's slot, so a
        // batch cannot wait forever when every worker holds such a task and none is idle for a backup.
        for slot in batch!.assigned.keys.sorted() where batch!.outcomes[slot] == nil {
            for holder in (batch!.assigned[slot] ?? []).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                guard let sentAt = workers[holder]?.outstanding[slot], now - sentAt > settings.presumedLostFactor * limit else { continue }
                _ = workers[holder]!.finish(slot, now: now)
                batch!.assigned[slot]!.remove(holder)
                counters.presumedLost += 1
                actions.append(.log(.warning, "slot unanswered: presumed lost, requeued",
                                    peer(holder, ["slot": "\(slot)", "silent.s": "\(Int(now - sentAt))"])))
                requeue(slot)
            }
        }
        if !batch!.pending.isEmpty { return actions + dispatch(now: now) }
        for slot in batch!.assigned.keys.sorted() where batch!.outcomes[slot] == nil {
            let holders = batch!.assigned[slot] ?? []
            guard holders.count == 1, let holder = holders.first,
                  let sentAt = workers[holder]?.outstanding[slot], now - sentAt > limit,
                  let idle = ids.first(where: { $0 != holder && workers[$0]!.free > 0 && eligible(slot, $0)
                                                && workers[$0]!.identity != workers[holder]!.identity })
            else { continue }
            counters.backups += 1
            actions.append(.log(.info, "slot outstanding past the deadline: backup copy",
                                peer(holder, ["slot": "\(slot)", "outstanding.s": "\(Int(now - sentAt))", "deadline.s": "\(Int(limit))",
                                              "backup": "\(workers[idle]!.name)"])))
            send(slot, to: idle)
        }
        return actions
    }

    /// Log metadata naming a peer: its worker name if registered, and its routing id.
    private func peer(_ id: WorkerID, _ extra: Logger.Metadata = [:]) -> Logger.Metadata {
        var m = extra
        m["worker.id"] = "\(Self.hex(id.prefix(8)))"
        if let name = workers[id]?.name, m["worker"] == nil { m["worker"] = "\(name)" }
        if let b = batch?.id { m["batch"] = "\(b)" }
        return m
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// A peer's text, cut to a length fit for a log line.
    static func cut(_ text: String, _ limit: Int = Wire.maximumReasonLength) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + "..."
    }
}
