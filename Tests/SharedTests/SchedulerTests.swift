import Cluster
import Core
import Datasets
import MetaLearning
import Testing
import TestSupport
import Training
import Wire

/// The coordinator's state machine, driven by hand with an injected clock: no sockets, no sleeping.
@Suite struct SchedulerTests {
    static let run = Wire.RunID(bytes: Array(1...16))
    static let count = 4

    struct Harness {
        var scheduler: Scheduler
        var now = 0.0
        var sent: [(to: Scheduler.WorkerID, Wire.Message)] = []
        var params: [(Scheduler.WorkerID, UInt64)] = []
        var completed: [[Scheduler.Outcome]] = []
        var fatal: String?
        /// Slots handed to the coordinator's own computation.
        var arbitrations: [Int] = []

        init(maximumFaults: Int = 3, prefetch: Int? = nil, verify: Double = 0, heartbeat: Double = Wire.heartbeatInterval) {
            var settings = Scheduler.Settings(parameterCount: SchedulerTests.count)
            settings.heartbeat = Wire.Heartbeat(interval: heartbeat)
            settings.maximumFaults = maximumFaults
            settings.verifyFraction = verify
            if let prefetch { settings.prefetch = prefetch }
            let spec = RunSpec(runID: SchedulerTests.run.description, training: TrainingConfig(),
                               dataset: DatasetSpec(kind: .synthetic, name: "synthetic", path: "synthetic", options: VolumeOptions(),
                                                    identity: DatasetIdentity(name: "synthetic", fingerprint: "data")),
                               split: TaskSplit(testPatterns: []), evaluation: EvaluationSpec())
            scheduler = Scheduler(run: SchedulerTests.run, welcome: Wire.Welcome(run: spec.wireForm), datasetFingerprint: "data",
                                  numericsFingerprint: "numbers", settings: settings)
        }

        mutating func perform(_ actions: [Scheduler.Action]) {
            for a in actions {
                switch a {
                case .send(let id, let m): sent.append((id, m))
                case .sendParams(let id, let b): params.append((id, b))
                case .batchComplete(_, let outcomes): completed.append(outcomes)
                case .fatal(let why): fatal = why
                case .arbitrate(_, let slot, _): arbitrations.append(slot)
                case .log: break
                }
            }
        }

        mutating func receive(_ id: Scheduler.WorkerID, _ m: Wire.Message, identity: String? = nil) {
            perform(scheduler.receive(from: id, identity: identity, frames: m.encode(), now: now))
        }

        mutating func tick(_ dt: Double) {
            now += dt
            perform(scheduler.tick(now: now))
        }

        mutating func join(_ id: Scheduler.WorkerID, threads: Int = 1, numerics: String = "numbers", identity: String? = nil) {
            receive(id, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "w\(id[0])", threads: threads, previousRun: nil)), identity: identity)
            receive(id, Wire.Message(.ready, run: SchedulerTests.run, body: Wire.Ready(datasetFingerprint: "data", numericsFingerprint: numerics, kernel: "k")),
                    identity: identity)
        }

        /// Tasks sent to `id` (slot numbers), in order.
        func tasks(to id: Scheduler.WorkerID) -> [Int] {
            sent.filter { $0.to == id && $0.1.command == .task }.compactMap { try? $0.1.decode(Wire.Task.self).slot }
        }

        func commands(to id: Scheduler.WorkerID) -> [Wire.Command] { sent.filter { $0.to == id }.map(\.1.command) }

        mutating func answer(_ id: Scheduler.WorkerID, slot: Int, batch: UInt64 = 7, gradient: [Float]? = nil, dice: Float = 0.5,
                             identity: String? = nil) {
            receive(id, Wire.Message(.result, run: SchedulerTests.run, batch: batch, body: SchedulerTests.result(slot, dice: dice),
                                     payload: gradient ?? SchedulerTests.gradient(slot)), identity: identity)
        }

        /// The coordinator's own computation of `slot` (the honest values), as the backend reports it.
        mutating func arbitrate(_ slot: Int, batch: UInt64 = 7) {
            perform(scheduler.arbitrated(batch: batch, slot: slot, .success((SchedulerTests.result(slot), SchedulerTests.gradient(slot))), now: now))
        }

        mutating func start(_ n: Int, batch: UInt64 = 7) {
            perform(scheduler.startBatch(id: batch, jobs: (0..<n).map { Scheduler.Job(kind: .metaGradient, ref: Wire.TaskReference(task: $0, index: 0)) }, now: now))
        }
    }

    let a: Scheduler.WorkerID = [1], b: Scheduler.WorkerID = [2], c: Scheduler.WorkerID = [3]

    /// The honest result of a slot: what every correct worker computes, bit for bit.
    static func result(_ slot: Int, dice: Float = 0.5) -> Wire.Result {
        Wire.Result(slot: slot, kind: .metaGradient, queryLoss: 1, queryDice: dice, supportLoss: 1, objective: 1, seconds: 1)
    }
    static func gradient(_ slot: Int) -> [Float] { Array(repeating: Float(slot + 1), count: count) }

    @Test func registrationAndDispatchWithParametersFirst() {
        var h = Harness()
        h.join(a, threads: 2)
        #expect(h.commands(to: a) == [.welcome])
        #expect(h.scheduler.readyWorkers == 1)
        h.start(3)
        #expect(h.params.map(\.0) == [a])
        #expect(h.tasks(to: a) == [0, 1])
        h.answer(a, slot: 1)
        #expect(h.tasks(to: a) == [0, 1, 2])
        h.answer(a, slot: 2)
        h.answer(a, slot: 0)
        #expect(h.completed.count == 1)
        // Outcomes come back in slot order whatever order they arrived in.
        #expect(h.completed[0].map(\.gradient![0]) == [1, 2, 3])
        #expect(h.params.count == 1)
    }

    @Test func mismatchedDataOrNumericsAreRefused() {
        var h = Harness()
        h.receive(a, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "wa", threads: 1, previousRun: nil)))
        h.receive(a, Wire.Message(.ready, run: SchedulerTests.run, body: Wire.Ready(datasetFingerprint: "other", numericsFingerprint: "numbers", kernel: "k")))
        #expect(h.commands(to: a).last == .refused)
        h.join(b, numerics: "different")
        #expect(h.commands(to: b).last == .refused)
        #expect(h.scheduler.readyWorkers == 0)
        #expect(h.scheduler.counters.refused == 2)
    }

    @Test func otherRunsAndUnknownWorkers() {
        var h = Harness()
        let other = Wire.RunID(bytes: Array(repeating: 9, count: 16))
        h.receive(a, Wire.Message(.heartbeat, run: other, body: Wire.Empty()))
        #expect(h.commands(to: a) == [.refused])
        h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        #expect(h.commands(to: b) == [.reset])
        h.receive(c, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "wc", threads: 1, previousRun: other.description)))
        #expect(h.commands(to: c) == [.refused])
    }

    @Test func silentWorkerIsDeclaredDeadAndItsTasksReassigned() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        #expect(h.tasks(to: a) == [0] && h.tasks(to: b) == [1])
        // b keeps talking, a falls silent.
        for _ in 0..<6 {
            h.tick(1)
            h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        }
        #expect(h.scheduler.workers[a] == nil)
        h.answer(b, slot: 1)
        #expect(h.tasks(to: b) == [1, 0])
        h.answer(b, slot: 0)
        #expect(h.completed.count == 1)
        #expect(h.scheduler.counters.lost == 1)
    }

    @Test func heartbeatsAreSentEveryInterval() {
        var h = Harness()
        h.join(a)
        h.tick(0.5)
        #expect(!h.commands(to: a).contains(.heartbeat))
        h.tick(0.6)
        #expect(h.commands(to: a).filter { $0 == .heartbeat }.count == 1)
    }

    /// A coordinator's `--heartbeat` goes to every worker in WELCOME and sets its own times:
    /// heartbeats every interval, and a worker silent for 5 of them is declared dead.
    @Test func theHeartbeatIntervalTravelsInWelcomeAndSetsTheExpiry() throws {
        var h = Harness(heartbeat: 0.2)
        h.receive(a, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "w1", threads: 1, previousRun: nil)))
        let welcome = try #require(h.sent.first { $0.to == a && $0.1.command == .welcome })
        #expect(try welcome.1.decode(Wire.Welcome.self).heartbeat == 0.2)
        h.join(b)
        h.tick(0.25)
        #expect(h.commands(to: b).contains(.heartbeat))
        h.tick(0.5)
        #expect(h.scheduler.readyWorkers == 1, "b heard from 0.75 s ago is still alive")
        h.tick(0.6)
        #expect(h.scheduler.readyWorkers == 0, "b silent for 1.35 s (more than 5 x 0.2 s) is dead")
    }

    @Test func stragglerGetsABackupAndTheFirstResultWins() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(1)
        #expect(h.tasks(to: a) == [0] && h.tasks(to: b).isEmpty)
        // a is slow (but alive): after the deadline b gets a copy.
        while h.now < h.scheduler.deadline + 1 {
            h.tick(1)
            h.receive(a, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
            h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        }
        #expect(h.tasks(to: b) == [0])
        #expect(h.scheduler.counters.backups == 1)
        h.answer(b, slot: 0)
        #expect(h.completed.count == 1 && h.completed[0][0].worker == "w2")
        h.answer(a, slot: 0)
        #expect(h.completed.count == 1)
        #expect(h.scheduler.counters.stale == 1)
    }

    @Test func malformedResultsAreRedoneAndRepeatOffendersQuarantined() {
        var h = Harness(maximumFaults: 2)
        h.join(a)
        h.join(b)
        h.start(3)
        #expect(h.tasks(to: a) == [0] && h.tasks(to: b) == [1])
        h.answer(a, slot: 0, gradient: [1, 2])   // the wrong length
        #expect(h.scheduler.counters.faults == 1)
        #expect(h.tasks(to: a) == [0, 2], "a may not redo the slot it botched")
        h.receive(a, Wire.Message(.result, run: SchedulerTests.run, batch: 7, body: Self.result(2)))   // no payload
        #expect(h.scheduler.counters.faults == 2 && h.scheduler.counters.quarantined == 1)
        #expect(h.commands(to: a).last == .shutdown)
        h.answer(b, slot: 1)
        h.answer(b, slot: 0)
        h.answer(b, slot: 2)
        #expect(h.completed.count == 1 && h.completed[0].allSatisfy { $0.worker == "w2" })
        // The quarantined worker cannot come back.
        h.receive(a, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "wa", threads: 1, previousRun: nil)))
        #expect(h.commands(to: a).last == .shutdown)
    }

    @Test func staleAndDuplicateResultsAreDropped() {
        var h = Harness()
        h.join(a, threads: 2)
        h.start(2)
        h.answer(a, slot: 0, batch: 6)
        #expect(h.scheduler.counters.stale == 1)
        h.answer(a, slot: 0)
        h.answer(a, slot: 0)
        #expect(h.scheduler.counters.duplicate == 1)
        h.answer(a, slot: 1)
        #expect(h.completed.count == 1)
    }

    @Test func malformedMessagesAreCountedNotFatal() {
        var h = Harness()
        h.join(a)
        h.perform(h.scheduler.receive(from: a, frames: [[1, 2, 3]], now: 0))
        h.perform(h.scheduler.receive(from: a, frames: [Array(repeating: 0, count: 32), []], now: 0))
        var wrongVersion = Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()).encode()
        wrongVersion[0][4] = 99
        h.perform(h.scheduler.receive(from: a, frames: wrongVersion, now: 0))
        var oversize = Wire.Message(.result, run: SchedulerTests.run, batch: 7, body: Wire.Empty(), payload: [1]).encode()
        oversize[2] = Array(repeating: 0, count: 4 * (SchedulerTests.count + 1))
        h.perform(h.scheduler.receive(from: a, frames: oversize, now: 0))
        #expect(h.scheduler.counters.malformed == 4)
        #expect(h.scheduler.readyWorkers == 1)
    }

    /// Two workers say a slot cannot be computed: the coordinator tries it itself. If it
    /// cannot either, that is a data problem and the run ends; if it can, the claims were false.
    @Test func aTaskFailingOnTwoWorkersGoesToTheCoordinator() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.join(c)
        h.start(1)
        h.receive(a, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "bad file", slot: 0)))
        #expect(h.fatal == nil && h.arbitrations.isEmpty && h.tasks(to: b) == [0])
        h.receive(b, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "bad file", slot: 0)))
        #expect(h.arbitrations == [0] && h.tasks(to: c).isEmpty)
        h.perform(h.scheduler.arbitrated(batch: 7, slot: 0, .failure(.init("no such file")), now: h.now))
        #expect(h.fatal?.contains("no such file") == true)

        var g = Harness()
        g.join(a)
        g.join(b)
        g.start(1)
        g.receive(a, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "nope", slot: 0)))
        g.receive(b, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "nope", slot: 0)))
        g.arbitrate(0)
        #expect(g.fatal == nil && g.completed.count == 1 && g.completed[0][0].worker == "coordinator")
        #expect(g.scheduler.counters.faults == 2)
    }

    /// FAILED for a slot that already has its result is stale, from however many workers.
    @Test func failuresAfterTheResultAreIgnored() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        h.answer(a, slot: 0)
        for id in [a, b] {
            h.receive(id, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "late", slot: 0)))
        }
        #expect(h.fatal == nil && h.arbitrations.isEmpty)
        h.answer(b, slot: 1)
        #expect(h.completed.count == 1)
    }
}

/// Hostile and broken peers: nothing a peer sends may stall the run, and no result
/// is trusted beyond what determinism can prove.
extension SchedulerTests {
    /// A registered worker holding a task sends a message of another run: it is refused and
    /// its task goes to someone else (it used to vanish with the task, stalling the batch).
    @Test func aStrayMessageOfAnotherRunRequeuesTheSendersTasks() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        #expect(h.tasks(to: a) == [0] && h.tasks(to: b) == [1])
        h.receive(a, Wire.Message(.heartbeat, run: Wire.RunID(bytes: Array(repeating: 0xAA, count: 16)), body: Wire.Empty()))
        #expect(h.commands(to: a).last == .refused)
        h.answer(b, slot: 1)
        #expect(h.tasks(to: b) == [1, 0])
        h.answer(b, slot: 0)
        #expect(h.completed.count == 1)
    }

    /// A second READY with a wrong fingerprint from a worker that holds a task: refused, and the
    /// task requeued.
    @Test func aBadSecondReadyRequeuesTheSendersTasks() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        h.receive(a, Wire.Message(.ready, run: SchedulerTests.run, body: Wire.Ready(datasetFingerprint: "other", numericsFingerprint: "numbers", kernel: "k")))
        #expect(h.commands(to: a).last == .refused)
        h.answer(b, slot: 1)
        h.answer(b, slot: 0)
        #expect(h.completed.count == 1)
    }

    /// With CURVE, a worker is its public key: quarantined, it stays out whatever routing id it
    /// reconnects with.
    @Test func quarantineFollowsTheKeyAcrossConnections() {
        var h = Harness(maximumFaults: 1)
        h.join(a, identity: "KEY-A")
        h.join(b, identity: "KEY-B")
        h.start(2)
        h.answer(a, slot: 0, gradient: [1], identity: "KEY-A")
        #expect(h.scheduler.counters.quarantined == 1)
        h.join(c, identity: "KEY-A")
        #expect(h.commands(to: c) == [.shutdown, .shutdown])
        #expect(h.scheduler.readyWorkers == 1)
    }

    /// A non-finite result is held, not trusted and not a fault: another worker computes the
    /// slot; when the copies disagree, the coordinator's own computation settles it and the
    /// worker whose copy differs is quarantined.
    @Test func aNonFiniteResultNeedsASecondOpinion() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        h.answer(a, slot: 0, gradient: [1, .nan, 3, 4])
        #expect(h.scheduler.counters.suspicious == 1 && h.scheduler.counters.faults == 0)
        #expect(h.completed.isEmpty)
        h.answer(b, slot: 1)
        #expect(h.tasks(to: b) == [1, 0])
        h.answer(b, slot: 0)
        #expect(h.arbitrations == [0], "two different copies and no third worker: the coordinator decides")
        h.arbitrate(0)
        #expect(h.completed.count == 1 && h.completed[0][0].gradient == Self.gradient(0))
        #expect(h.scheduler.counters.quarantined == 1 && h.commands(to: a).last == .shutdown)
    }

    /// Honest divergence: two workers agree, bit for bit, on a non-finite result. It is
    /// accepted (training reports the divergence) and nobody is quarantined.
    @Test func agreedNonFiniteResultsAreAcceptedAsDivergence() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(1)
        h.answer(a, slot: 0, gradient: [.nan, 1, 1, 1])
        h.answer(b, slot: 0, gradient: [.nan, 1, 1, 1])
        #expect(h.completed.count == 1 && h.completed[0][0].gradient![0].isNaN)
        #expect(h.scheduler.counters.quarantined == 0 && h.scheduler.counters.faults == 0)
    }

    /// A finite but huge gradient (the 1e30 attack) is an outlier once the run has a history of
    /// norms: it is held for a second opinion like a non-finite one.
    @Test func anOutlierNormNeedsASecondOpinion() {
        var h = Harness()
        h.join(a)
        h.join(b)
        for batch in UInt64(1)...3 {
            h.perform(h.scheduler.startBatch(id: batch, jobs: (0..<4).map { Scheduler.Job(kind: .metaGradient, ref: .init(task: $0, index: 0)) }, now: h.now))
            for slot in 0..<4 { h.answer(slot % 2 == 0 ? a : b, slot: slot, batch: batch) }
        }
        #expect(h.completed.count == 3)
        h.start(2)
        h.answer(a, slot: 0, gradient: [Float](repeating: 1e30, count: SchedulerTests.count))
        #expect(h.scheduler.counters.suspicious == 1)
        h.answer(b, slot: 1)
        h.answer(b, slot: 0)
        h.arbitrate(0)
        #expect(h.completed.count == 4 && h.completed[3][0].gradient == Self.gradient(0))
        #expect(h.scheduler.counters.quarantined == 1)
    }

    /// `--verify 1`: every slot is computed by two identities and compared bit for bit.
    @Test func verificationComparesTwoIdentities() {
        var h = Harness(verify: 1)
        h.join(a)
        h.join(b)
        h.start(1)
        h.answer(a, slot: 0)
        #expect(h.completed.isEmpty && h.tasks(to: b) == [0])
        h.answer(b, slot: 0)
        #expect(h.completed.count == 1 && h.scheduler.counters.verified == 1)

        // A forged copy that looks normal is caught by the second computation and the arbiter.
        var f = Harness(verify: 1)
        f.join(a)
        f.join(b)
        f.start(1)
        f.answer(a, slot: 0, gradient: [9, 9, 9, 9])
        f.answer(b, slot: 0)
        #expect(f.arbitrations == [0])
        f.arbitrate(0)
        #expect(f.completed.count == 1 && f.completed[0][0].gradient == Self.gradient(0))
        #expect(f.scheduler.counters.quarantined == 1 && f.commands(to: a).last == .shutdown)
    }

    /// Forged evaluation scores outside their range are malformed results.
    @Test func outOfRangeScoresAreFaults() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        h.answer(a, slot: 0, dice: 1.7)
        #expect(h.scheduler.counters.faults == 1)
        #expect(h.completed.isEmpty)
    }

    /// One slow worker cannot push the backup deadline up: it follows the fast quartile.
    @Test func aSlowWorkerCannotPushTheDeadlineUp() {
        var h = Harness(prefetch: 0)
        h.join(a)
        h.join(b)
        for batch in UInt64(1)...8 {
            h.perform(h.scheduler.startBatch(id: batch, jobs: (0..<2).map { Scheduler.Job(kind: .metaGradient, ref: .init(task: $0, index: 0)) }, now: h.now))
            h.now += 2
            h.answer(b, slot: 1, batch: batch)
            h.now += 58
            h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
            h.answer(a, slot: 0, batch: batch)
        }
        // Half the task times are 60 s, half 2 s: the deadline stays at a few seconds.
        #expect(h.scheduler.deadline <= 10)
    }

    /// Names are bounded: a name of half a megabyte is refused, not repeated in every log line.
    @Test func hugeNamesAreRefused() {
        var h = Harness()
        h.receive(a, Wire.Message(.hello, run: .none, body: Wire.Hello(name: String(repeating: "x", count: 1 << 19), threads: 1, previousRun: nil)))
        #expect(h.commands(to: a) == [.refused])
        #expect(h.scheduler.connectedWorkers == 0)
    }
}

extension SchedulerTests {
    /// Every worker holds a task whose result never comes (dropped on the way): with no idle
    /// worker for a backup, the tasks are presumed lost after twice the deadline and re-sent.
    @Test func lostResultsDoNotStallTheBatch() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(2)
        while h.now < 2 * h.scheduler.deadline + 1 {
            h.tick(1)
            h.receive(a, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
            h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        }
        #expect(h.scheduler.counters.presumedLost == 2)
        #expect(h.tasks(to: a).count == 2 && h.tasks(to: b).count == 2)
        h.answer(a, slot: h.tasks(to: a).last!)
        h.answer(b, slot: h.tasks(to: b).last!)
        #expect(h.completed.count == 1)
    }

    @Test func evaluationResultsCarryNoPayload() {
        var h = Harness()
        h.join(a)
        h.perform(h.scheduler.startBatch(id: 9, jobs: [Scheduler.Job(kind: .evaluate, ref: Wire.TaskReference(task: 0, index: 0))], now: 0))
        h.receive(a, Wire.Message(.result, run: SchedulerTests.run, batch: 9,
                                  body: Wire.Result(slot: 0, kind: .evaluate, queryLoss: 1, queryDice: 0.7, supportLoss: 0, objective: 0, seconds: 1)))
        #expect(h.completed.count == 1 && h.completed[0][0].gradient == nil)
        #expect(h.scheduler.counters.malformed == 0)
    }

    // MARK: Tasks sent ahead (latency hiding)

    @Test func tasksAreSentAheadWhileEveryThreadHasMoreWork() {
        var h = Harness(prefetch: 1)
        h.join(a)
        h.join(b)
        h.start(8)
        // Each thread runs one task and has the next queued behind it.
        #expect(h.tasks(to: a) == [0, 2])
        #expect(h.tasks(to: b) == [1, 3])
        h.answer(a, slot: 0)
        #expect(h.tasks(to: a) == [0, 2, 4])
        h.answer(a, slot: 2)
        h.answer(b, slot: 1)
        h.answer(a, slot: 4)
        #expect(h.tasks(to: a) == [0, 2, 4, 5, 7])
        #expect(h.tasks(to: b) == [1, 3, 6])
        // Four tasks left for two threads, none pending: nothing more goes out.
        for (id, slot) in [(b, 3), (a, 5), (b, 6), (a, 7)] { h.answer(id, slot: slot) }
        #expect(h.sent.filter { $0.1.command == .task }.count == 8)
        #expect(h.completed.count == 1)
        #expect(h.completed.first?.map { $0.gradient?.first } == (0..<8).map { Float($0 + 1) })
    }

    @Test func nothingIsSentAheadAtTheEndOfABatch() {
        var h = Harness(prefetch: 1)
        h.join(a)
        h.join(b)
        h.start(3)
        // One pending task, two threads: queuing it behind one of them could leave the other idle.
        #expect(h.tasks(to: a) == [0])
        #expect(h.tasks(to: b) == [1])
        h.answer(b, slot: 1)
        #expect(h.tasks(to: b) == [1, 2])
    }

    @Test func noPrefetchMeansOneTaskPerThread() {
        var h = Harness(prefetch: 0)
        h.join(a)
        h.join(b, threads: 2)
        h.start(8)
        #expect(h.tasks(to: a) == [0])
        #expect(h.tasks(to: b) == [1, 2])
    }

    @Test func aTaskSentAheadStartsItsClockWhenAThreadFreesUp() {
        var h = Harness(prefetch: 1)
        h.join(a)
        h.start(3)
        #expect(h.tasks(to: a) == [0, 1])
        for slot in 0..<3 {
            h.now += 10
            h.answer(a, slot: slot)
        }
        #expect(h.tasks(to: a) == [0, 1, 2])
        #expect(h.completed.count == 1)
        // Every task took 10 s on the thread; timed from when it was sent, the queued ones
        // would count 20 s and double the backup deadline.
        #expect(h.scheduler.deadline == 30)
    }

    @Test func tasksQueuedBehindAStragglerGetBackups() {
        var h = Harness(prefetch: 1)
        h.join(a)
        h.join(b)
        h.start(4)
        #expect(h.tasks(to: a) == [0, 2])
        #expect(h.tasks(to: b) == [1, 3])
        h.now = 1
        h.answer(b, slot: 1)
        h.now = 2
        h.answer(b, slot: 3)
        // a is stuck on slot 0 (alive: it heartbeats) with slot 2 queued behind it; b is idle.
        // Past the deadline (5 s) b gets a backup of the running slot, then of the queued one.
        h.receive(a, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        h.tick(4)
        #expect(h.tasks(to: b) == [1, 3, 0])
        #expect(h.scheduler.counters.backups == 1)
        h.answer(b, slot: 0)
        #expect(h.tasks(to: b) == [1, 3, 0, 2])
        #expect(h.scheduler.counters.backups == 2 && h.scheduler.counters.lost == 0)
        h.answer(b, slot: 2)
        #expect(h.completed.count == 1)
        #expect(h.completed.first?.map(\.worker) == ["w2", "w2", "w2", "w2"])
        // The straggler's late results are dropped.
        h.answer(a, slot: 0)
        #expect(h.completed.count == 1)
    }

    /// Once the run is over, every worker that speaks is told so: one that was connected and
    /// missed the message, and one that lost its connection and registers again (a batch
    /// system restarted it). The coordinator waits for the missing ones by name only.
    @Test func workersThatComeBackAfterTheEndAreToldTheRunIsOver() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.join(c)
        // a falls silent, is declared dead and registers again during the run: not missing.
        for _ in 0..<6 {
            h.tick(1)
            for id in [b, c] { h.receive(id, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty())) }
        }
        #expect(h.scheduler.workers[a] == nil && h.scheduler.missingWorkers == 1)
        h.join(a)
        #expect(h.scheduler.missingWorkers == 0, "a registered again")
        for _ in 0..<6 {
            h.tick(1)
            h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        }
        #expect(h.scheduler.missingWorkers == 2, "a and c fell silent")
        // b restarts: its new connection registers before the old one is declared dead.
        let b2: Scheduler.WorkerID = [2, 1]
        h.receive(b2, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "w2", threads: 1, previousRun: SchedulerTests.run.description)))
        for _ in 0..<6 {
            h.tick(1)
            h.receive(b2, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        }
        #expect(h.scheduler.workers[b] == nil && h.scheduler.missingWorkers == 2, "b came back before it was missed")
        h.perform(h.scheduler.shutdownAll(reason: "the run is complete"))
        #expect(h.commands(to: b2).last == .shutdown)
        // c comes back on a fresh connection (restarted), a on its old one (it was stopped):
        // both are told, and no longer waited for. A heartbeat from a connection the
        // coordinator no longer knows is told too, not asked to register again.
        let back: Scheduler.WorkerID = [3, 1]
        h.receive(back, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "w3", threads: 1, previousRun: SchedulerTests.run.description)))
        #expect(h.commands(to: back) == [.shutdown])
        #expect(h.scheduler.missingWorkers == 1)
        h.receive(a, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        #expect(h.commands(to: a).last == .shutdown)
        #expect(h.scheduler.missingWorkers == 0)
        h.receive(b, Wire.Message(.heartbeat, run: SchedulerTests.run, body: Wire.Empty()))
        #expect(h.commands(to: b).last == .shutdown && !h.commands(to: b).contains(.reset))
        let notice = h.sent.last.flatMap { try? $0.1.decode(Wire.Notice.self) }
        #expect(notice?.reason == "the run is complete")
        let before = h.commands(to: a).count
        h.join(a)
        #expect(Array(h.commands(to: a).dropFirst(before)) == [.shutdown, .shutdown])
        #expect(h.scheduler.readyWorkers == 0)
    }
}
