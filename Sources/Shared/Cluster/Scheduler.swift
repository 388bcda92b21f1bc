import Logging
import Training
import Wire

/// The coordinator's bookkeeping as a pure state machine (the swift-nio pattern): who is
/// alive, which task is where, what to resend. Events (a received message, a clock tick) go
/// in with the current time; actions (messages to send, log lines, a completed batch) come
/// out, and the socket loop performs them. Time is injected, so tests need no sleeping.
///
/// Reliability follows the ZeroMQ guide's Paranoid Pirate and Majordomo patterns and
/// MapReduce's backup tasks: heartbeats both ways, a silent worker's tasks are reassigned, an
/// outstanding task older than a deadline derived from observed task times gets a backup copy
/// on an idle worker (the first result wins), and a worker returning malformed or non-finite
/// results has the task re-run elsewhere and is quarantined after repeated faults. Each slot's
/// result depends only on the parameters and the task, so whichever copy arrives first gives
/// the same bits.
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
        /// Meta-parameter count: the size every meta-gradient must have.
        public var parameterCount: Int
        public init(parameterCount: Int) { self.parameterCount = parameterCount }
    }

    public enum Phase: String, Sendable { case loading, ready }

    public struct Worker: Sendable {
        public var name: String
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
        public var faults = 0
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
        /// Name of the worker whose copy was used.
        public var worker: String
    }

    public enum Action: Sendable {
        case send(WorkerID, Wire.Message)
        /// Send the parameters of the current batch (the driver holds them).
        case sendParams(WorkerID, batch: UInt64)
        case log(Logger.Level, Logger.Message, Logger.Metadata)
        /// Every slot has its result; outcomes in slot order.
        case batchComplete(batch: UInt64, [Outcome])
        /// The run cannot go on.
        case fatal(String)
    }

    /// Counts of everything dropped or redone, for logs and tests.
    public struct Counters: Sendable, Equatable {
        public var malformed = 0, stale = 0, duplicate = 0, unknown = 0, refused = 0
        public var faults = 0, quarantined = 0, reassigned = 0, backups = 0, lost = 0, presumedLost = 0
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
        /// Slot -> workers that could not compute it, and why.
        var failures: [Int: [WorkerID: String]] = [:]

        init(id: UInt64, jobs: [Job]) {
            self.id = id
            self.jobs = jobs
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
    private var quarantined: Set<WorkerID> = []
    public private(set) var counters = Counters()
    private var state = BatchState.idle
    /// Observed task times (seconds), for the backup deadline.
    private var taskTimes: [Double] = []

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
    public var remainingSlots: Int { batch.map { $0.jobs.count - $0.outcomes.count } ?? 0 }
    /// The deadline after which an outstanding task gets a backup copy.
    public var deadline: Double {
        guard !taskTimes.isEmpty else { return max(settings.minimumDeadline, settings.initialDeadline) }
        let sorted = taskTimes.suffix(64).sorted()
        return max(settings.minimumDeadline, settings.deadlineFactor * sorted[sorted.count / 2])
    }

    // MARK: Events

    /// Starts a batch of jobs (slots 0..<n) computed at the parameters of batch `id`.
    public mutating func startBatch(id: UInt64, jobs: [Job], now: Double) -> [Action] {
        guard case .idle = state else { preconditionFailure("a batch is already running") }
        precondition(!jobs.isEmpty, "empty batch")
        state = .running(Batch(id: id, jobs: jobs))
        return dispatch(now: now)
    }

    /// Handles a message from `id` (frames without the ROUTER's identity frame).
    public mutating func receive(from id: WorkerID, frames: [[UInt8]], now: Double) -> [Action] {
        let message: Wire.Message
        do {
            message = try Wire.Message(frames: frames, maximumPayload: settings.parameterCount)
        } catch {
            counters.malformed += 1
            return [.log(.warning, "dropped a malformed message", peer(id, ["reason": "\(error)"]))]
        }
        if quarantined.contains(id) {
            return [.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "quarantined")))]
        }
        if message.command == .hello { return hello(id, message, now: now) }
        guard message.run == run else {
            counters.refused += 1
            workers[id] = nil
            return [.send(id, Wire.Message(.refused, run: message.run, body: Wire.Notice(reason: "this coordinator runs another run (\(run)); worker of run \(message.run) refused"))),
                    .log(.warning, "refused a worker of another run", peer(id, ["run": "\(message.run)"]))]
        }
        guard workers[id] != nil else {
            counters.unknown += 1
            return [.send(id, Wire.Message(.reset, run: run, body: Wire.Notice(reason: "unknown worker; register again")))]
        }
        workers[id]!.lastSeen = now
        var actions: [Action]
        switch message.command {
        case .ready: actions = ready(id, message)
        case .result: actions = result(id, message, now: now)
        case .failed: actions = failed(id, message, now: now)
        case .heartbeat: actions = []
        case .bye:
            actions = [.log(.info, "worker left", peer(id))]
            remove(id)
        case .hello, .welcome, .refused, .params, .task, .reset, .shutdown:
            counters.malformed += 1
            actions = [.log(.warning, "unexpected command", peer(id, ["command": "\(message.command)"]))]
        }
        return actions + dispatch(now: now)
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
                remove(id)
                continue
            }
            if now - w.lastSent >= settings.heartbeatInterval {
                workers[id]!.lastSent = now
                actions.append(.send(id, Wire.Message(.heartbeat, run: run, body: Wire.Empty())))
            }
        }
        return actions + dispatch(now: now)
    }

    /// Tells every worker the run is over.
    public mutating func shutdownAll(reason: String) -> [Action] {
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        workers = [:]
        return ids.map { .send($0, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: reason))) }
    }

    // MARK: Handlers

    private mutating func hello(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        let hello: Wire.Hello
        do { hello = try message.decode(Wire.Hello.self) } catch {
            counters.malformed += 1
            return [.log(.warning, "dropped a malformed hello", peer(id, ["reason": "\(error)"]))]
        }
        if let previous = hello.previousRun, previous != run.description {
            counters.refused += 1
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: "the worker belongs to run \(previous); this coordinator runs \(run)"))),
                    .log(.warning, "refused a worker of another run", peer(id, ["worker": "\(hello.name)", "run": "\(previous)"]))]
        }
        guard (1...1024).contains(hello.threads) else {
            counters.malformed += 1
            return [.log(.warning, "dropped a hello with a bad thread count", peer(id, ["worker": "\(hello.name)", "threads": "\(hello.threads)"]))]
        }
        if workers[id] != nil { remove(id) }
        workers[id] = Worker(name: hello.name, threads: hello.threads, phase: .loading, lastSeen: now, lastSent: now)
        return [.send(id, Wire.Message(.welcome, run: run, body: welcome)),
                .log(.info, "worker registering", peer(id, ["threads": "\(hello.threads)"]))]
    }

    private mutating func ready(_ id: WorkerID, _ message: Wire.Message) -> [Action] {
        guard let r = try? message.decode(Wire.Ready.self) else {
            counters.malformed += 1
            return [.log(.warning, "malformed ready", peer(id))]
        }
        var reason: String?
        if r.datasetFingerprint != datasetFingerprint {
            reason = "dataset fingerprint \(r.datasetFingerprint.prefix(16)) differs from the coordinator's \(datasetFingerprint.prefix(16)): the worker's data is not the run's data"
        } else if r.numericsFingerprint != numericsFingerprint {
            reason = "numerics differ from the coordinator's (worker kernels: \(r.kernel)); results would not be bitwise reproducible. Pin the kernels on every machine (OPENBLAS_CORETYPE, ONEDNN_MAX_CPU_ISA) or use identical machines"
        }
        if let reason {
            counters.refused += 1
            let metadata = peer(id, ["reason": "\(reason)"])
            workers[id] = nil
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: reason))),
                    .log(.error, "refused a worker", metadata)]
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
        if current.outcomes[r.slot] != nil {
            counters.duplicate += 1
            return []
        }
        let job = current.jobs[r.slot]
        var problem: String?
        if r.kind != job.kind {
            problem = "result kind \(r.kind) for a \(job.kind) task"
        } else if job.kind == .metaGradient {
            if let g = message.payload {
                if g.count != settings.parameterCount { problem = "gradient of \(g.count) values, expected \(settings.parameterCount)" }
                else if !g.allSatisfy(\.isFinite) { problem = "non-finite gradient" }
            } else {
                problem = "meta-gradient result without a payload"
            }
            if problem == nil, ![r.queryLoss, r.objective].allSatisfy(\.isFinite) { problem = "non-finite loss" }
        } else if message.payload != nil {
            problem = "evaluation result with a payload"
        }
        if let problem { return fault(id, slot: r.slot, problem) }
        batch!.outcomes[r.slot] = Outcome(result: r, gradient: message.payload, worker: workers[id]!.name)
        workers[id]!.completed += 1
        taskTimes.append(now - sentAt)
        guard batch!.isComplete else { return [] }
        let done = batch!
        // Copies still running elsewhere will report stale results; their threads count as
        // free again now (a worker queues what it cannot start yet).
        for w in workers.keys {
            workers[w]!.outstanding = [:]
            workers[w]!.queued = []
        }
        state = .idle
        return [.batchComplete(batch: done.id, (0..<done.jobs.count).map { done.outcomes[$0]! })]
    }

    private mutating func failed(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let n = try? message.decode(Wire.Notice.self), let slot = n.slot, message.batch == batch?.id,
              workers[id]!.finish(slot, now: now) != nil
        else {
            counters.stale += 1
            return []
        }
        batch!.assigned[slot]?.remove(id)
        batch!.failures[slot, default: [:]][id] = n.reason
        if batch!.failures[slot]!.count >= 2 {
            return [.fatal("task slot \(slot) (task \(batch!.jobs[slot].ref.task), sample \(batch!.jobs[slot].ref.index)) fails on every worker that tries it: \(n.reason)")]
        }
        requeue(slot)
        return [.log(.warning, "worker could not compute a slot; trying another worker", peer(id, ["slot": "\(slot)", "reason": "\(n.reason)"]))]
    }

    /// A bad result: the task is redone elsewhere; repeated faults quarantine the worker.
    private mutating func fault(_ id: WorkerID, slot: Int, _ problem: String) -> [Action] {
        counters.faults += 1
        workers[id]!.faults += 1
        requeue(slot)
        var actions: [Action] = [.log(.warning, "bad result; the task is re-run", peer(id, ["slot": "\(slot)", "problem": "\(problem)"]))]
        if workers[id]!.faults >= settings.maximumFaults {
            counters.quarantined += 1
            quarantined.insert(id)
            let metadata = peer(id, ["faults": "\(settings.maximumFaults)"])
            remove(id)
            actions.append(.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "quarantined after \(settings.maximumFaults) bad results"))))
            actions.append(.log(.error, "worker quarantined after repeated bad results", metadata))
        }
        return actions
    }

    /// Forgets a worker and puts its unfinished tasks back in the queue.
    private mutating func remove(_ id: WorkerID) {
        guard let w = workers.removeValue(forKey: id) else { return }
        for slot in w.outstanding.keys.sorted() {
            batch?.assigned[slot]?.remove(id)
            requeue(slot)
        }
    }

    private mutating func requeue(_ slot: Int) {
        guard let b = batch, b.outcomes[slot] == nil, (b.assigned[slot] ?? []).isEmpty, !b.pending.contains(slot) else { return }
        counters.reassigned += 1
        batch!.pending.append(slot)
        batch!.pending.sort()
    }

    /// Gives pending tasks to ready workers with free threads; once none is pending, gives
    /// idle workers backup copies of tasks outstanding longer than the deadline.
    private mutating func dispatch(now: Double) -> [Action] {
        guard let current = batch?.id else { return [] }
        var actions: [Action] = []
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
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
        func untried(by id: WorkerID) -> (Int) -> Bool { { [batch] slot in batch!.failures[slot]?[id] == nil } }
        for id in ids {
            while workers[id]!.free > 0, let index = batch!.pending.firstIndex(where: untried(by: id)) {
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
                let candidates = ready.filter { id in room(id) && batch!.pending.contains(where: untried(by: id)) }
                guard let id = candidates.min(by: { load($0) < load($1) }),
                      let index = batch!.pending.firstIndex(where: untried(by: id)) else { break }
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
                  let idle = ids.first(where: { $0 != holder && workers[$0]!.free > 0 && batch!.failures[slot]?[$0] == nil })
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
        m["worker.id"] = "\(id.prefix(8).map { String(format: "%02x", $0) }.joined())"
        if let name = workers[id]?.name, m["worker"] == nil { m["worker"] = "\(name)" }
        if let b = batch?.id { m["batch"] = "\(b)" }
        return m
    }
}
