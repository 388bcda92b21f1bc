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

        init(maximumFaults: Int = 3, prefetch: Int? = nil) {
            var settings = Scheduler.Settings(parameterCount: SchedulerTests.count)
            settings.maximumFaults = maximumFaults
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
                case .log: break
                }
            }
        }

        mutating func receive(_ id: Scheduler.WorkerID, _ m: Wire.Message) {
            perform(scheduler.receive(from: id, frames: m.encode(), now: now))
        }

        mutating func tick(_ dt: Double) {
            now += dt
            perform(scheduler.tick(now: now))
        }

        mutating func join(_ id: Scheduler.WorkerID, threads: Int = 1, numerics: String = "numbers") {
            receive(id, Wire.Message(.hello, run: .none, body: Wire.Hello(name: "w\(id[0])", threads: threads, previousRun: nil)))
            receive(id, Wire.Message(.ready, run: SchedulerTests.run, body: Wire.Ready(datasetFingerprint: "data", numericsFingerprint: numerics, kernel: "k")))
        }

        /// Tasks sent to `id` (slot numbers), in order.
        func tasks(to id: Scheduler.WorkerID) -> [Int] {
            sent.filter { $0.to == id && $0.1.command == .task }.compactMap { try? $0.1.decode(Wire.Task.self).slot }
        }

        func commands(to id: Scheduler.WorkerID) -> [Wire.Command] { sent.filter { $0.to == id }.map(\.1.command) }

        mutating func answer(_ id: Scheduler.WorkerID, slot: Int, batch: UInt64 = 7, gradient: [Float]? = nil) {
            let g = gradient ?? Array(repeating: Float(slot), count: SchedulerTests.count)
            receive(id, Wire.Message(.result, run: SchedulerTests.run, batch: batch,
                                     body: Wire.Result(slot: slot, kind: .metaGradient, queryLoss: 1, queryDice: 0.5,
                                                       supportLoss: 1, objective: 1, seconds: 1),
                                     payload: g))
        }

        mutating func start(_ n: Int, batch: UInt64 = 7) {
            perform(scheduler.startBatch(id: batch, jobs: (0..<n).map { Scheduler.Job(kind: .metaGradient, ref: Wire.TaskReference(task: $0, index: 0)) }, now: now))
        }
    }

    let a: Scheduler.WorkerID = [1], b: Scheduler.WorkerID = [2], c: Scheduler.WorkerID = [3]

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
        #expect(h.completed[0].map(\.gradient![0]) == [0, 1, 2])
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

    @Test func badGradientsAreRedoneAndRepeatOffendersQuarantined() {
        var h = Harness(maximumFaults: 2)
        h.join(a)
        h.join(b)
        h.start(2)
        h.answer(a, slot: 0, gradient: [1, .nan, 3, 4])
        #expect(h.scheduler.counters.faults == 1)
        h.answer(a, slot: 0, gradient: [1, 2])
        #expect(h.scheduler.counters.faults == 2 && h.scheduler.counters.quarantined == 1)
        #expect(h.commands(to: a).last == .shutdown)
        h.answer(b, slot: 1)
        #expect(h.tasks(to: b).sorted() == [0, 1])
        h.answer(b, slot: 0)
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

    @Test func aTaskFailingOnTwoWorkersIsFatal() {
        var h = Harness()
        h.join(a)
        h.join(b)
        h.start(1)
        h.receive(a, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "bad file", slot: 0)))
        #expect(h.fatal == nil && h.tasks(to: b) == [0])
        h.receive(b, Wire.Message(.failed, run: SchedulerTests.run, batch: 7, body: Wire.Notice(reason: "bad file", slot: 0)))
        #expect(h.fatal != nil)
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
        #expect(h.completed.first?.map { $0.gradient?.first } == (0..<8).map { Float($0) })
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
}
