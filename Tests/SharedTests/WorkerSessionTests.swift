import Cluster
import Testing
import Wire

/// The worker's state machine, driven by hand with an injected clock: no sockets, no sleeping.
@Suite struct WorkerSessionTests {
    static let run = Wire.RunID(bytes: Array(1...16))
    static let ready = Wire.Ready(datasetFingerprint: "data", numericsFingerprint: "numbers", kernel: "k")

    /// A minimal valid run specification for WELCOME.
    static func specification(_ run: Wire.RunID = WorkerSessionTests.run) -> Wire.RunSpecification {
        let nodes: [Wire.RunSpecification.Node] = [
            .init(name: "input", layer: "input", inputs: []),
            .init(name: "head", layer: "conv2d", inputs: [0], outChannels: 1, kernel: 1, bias: true),
        ]
        return Wire.RunSpecification(
            runID: run.description, seed: 1, initSeed: 1, model: .init(name: "tiny", channels: 1, height: 16, width: 16, nodes: nodes),
            learner: .init(supportShots: 2, queryShots: 1, innerSteps: 1, innerLearningRate: 0.01, learnedInnerRates: false,
                           order: "second", firstOrderSteps: 0, multiStepLoss: false, multiStepAnnealSteps: 100),
            dataset: .init(kind: "synthetic", name: "synthetic", path: "synthetic", identityName: "synthetic", fingerprint: "data",
                           axis: "axial", size: 16, normalisation: .init(kind: "zscore", low: 0.5, high: 99.5), requireLabel: true,
                           sameVolume: true, augment: false, skipBad: false, pseudo: nil, includeTrainingImages: false),
            testPatterns: [], heldOut: .init(seed: 3, support: 2, query: 1, steps: nil, perTask: 1),
            numerics: .init(cpuKernels: "avx2", matrixLibrary: "openblas", convolution: nil, keptSteps: nil))
    }

    struct Harness {
        var session: WorkerSession
        var now = 0.0
        var actions: [WorkerSession.Action] = []

        init(idleTimeout: Double = 0, secure: Bool = false) {
            var settings = WorkerSession.Settings(name: "w", threads: 2)
            settings.idleTimeout = idleTimeout
            settings.secure = secure
            session = WorkerSession(settings: settings, now: 0)
        }

        mutating func handle(_ event: WorkerSession.Event) { actions += session.handle(event, now: now) }
        mutating func receive(_ m: Wire.Message) { handle(.received(m.encode())) }
        mutating func tick(_ dt: Double) {
            now += dt
            handle(.tick)
        }

        /// Commands sent to the coordinator, in order.
        var sent: [Wire.Command] { actions.compactMap { if case .send(let m) = $0 { m.command } else { nil } } }
        var connects: Int { actions.filter { if case .connect = $0 { true } else { false } }.count }
        var exit: WorkerSession.Exit? { actions.lazy.compactMap { if case .exit(let e) = $0 { e } else { nil } }.first }
        var loads: Int { actions.filter { if case .load = $0 { true } else { false } }.count }
        var hellos: [Wire.Hello] {
            actions.compactMap { if case .send(let m) = $0, m.command == .hello { try? m.decode(Wire.Hello.self) } else { nil } }
        }

        /// Starts, is welcomed, loads the data and reports ready.
        mutating func register() {
            handle(.start)
            receive(Wire.Message(.welcome, run: WorkerSessionTests.run, body: Wire.Welcome(run: WorkerSessionTests.specification())))
            handle(.loaded(runID: WorkerSessionTests.run.description, .success(.init(ready: WorkerSessionTests.ready, parameterCount: 3))))
        }
    }

    @Test func registrationHelloWelcomeLoadReady() {
        var h = Harness()
        h.handle(.start)
        #expect(h.connects == 1)
        #expect(h.sent == [.hello])
        #expect(h.hellos.first?.threads == 2 && h.hellos.first?.previousRun == nil)
        h.receive(Wire.Message(.welcome, run: Self.run, body: Wire.Welcome(run: Self.specification())))
        #expect(h.loads == 1)
        #expect(h.sent == [.hello], "READY waits for the data")
        // Heartbeats go out while the data loads, so a slow load never looks like a dead worker.
        h.tick(1.5)
        #expect(h.sent == [.hello, .heartbeat])
        h.handle(.loaded(runID: Self.run.description, .success(.init(ready: Self.ready, parameterCount: 3))))
        #expect(h.sent == [.hello, .heartbeat, .ready])
    }

    @Test func refusalAndShutdownEndTheWorker() {
        var h = Harness()
        h.handle(.start)
        h.receive(Wire.Message(.refused, run: Self.run, body: Wire.Notice(reason: "other data")))
        #expect(h.exit == .refused("other data"))
        #expect(h.session.hasExited)
        // Nothing happens after the exit.
        let before = h.actions.count
        h.tick(100)
        #expect(h.actions.count == before)

        var s = Harness()
        s.register()
        s.receive(Wire.Message(.shutdown, run: Self.run, body: Wire.Notice(reason: "the run is complete")))
        #expect(s.exit == .shutdown("the run is complete"))
    }

    @Test func dataThatCannotLoadSaysByeAndFails() {
        var h = Harness()
        h.handle(.start)
        h.receive(Wire.Message(.welcome, run: Self.run, body: Wire.Welcome(run: Self.specification())))
        h.handle(.loaded(runID: Self.run.description, .failure(.init("no such folder"))))
        #expect(h.sent.last == .bye)
        #expect(h.exit == .failed("no such folder"))
    }

    @Test func silenceMeansReconnectWithAGrowingDelay() {
        var h = Harness()
        h.register()
        // Heard from at t = 0; the expiry is 5 s.
        h.tick(5.5)
        #expect(h.actions.contains { if case .disconnect = $0 { true } else { false } })
        #expect(h.connects == 1)
        h.tick(0.6)   // the first delay is 1 s
        #expect(h.connects == 1)
        h.tick(0.5)
        #expect(h.connects == 2)
        #expect(h.hellos.last?.previousRun == Self.run.description, "a worker says which run it belonged to")
        // Nobody answers: the next delay doubles.
        h.tick(5.5)
        let connects = h.connects
        h.tick(1.5)
        #expect(h.connects == connects)
        h.tick(0.6)
        #expect(h.connects == connects + 1)
        // The same run welcomes it back: no reload, READY at once.
        h.receive(Wire.Message(.welcome, run: Self.run, body: Wire.Welcome(run: Self.specification())))
        #expect(h.loads == 1)
        #expect(h.sent.last == .ready)
    }

    /// The coordinator's heartbeat interval (WELCOME) sets the worker's: its heartbeats, its
    /// expiry of the coordinator and its reconnect delays all scale with it. One outside the
    /// accepted range, or not finite, is a malformed WELCOME and changes nothing.
    @Test func theWelcomesHeartbeatSetsEveryLivenessTime() {
        var h = Harness()
        h.handle(.start)
        for bad in [0.0, -1, .nan, .infinity, 1e9] {
            h.receive(Wire.Message(.welcome, run: Self.run, body: Wire.Welcome(run: Self.specification(), heartbeat: bad)))
        }
        #expect(h.loads == 0, "an out-of-range heartbeat was accepted")
        #expect(h.session.heartbeat == Wire.Heartbeat(interval: Wire.heartbeatInterval))
        h.receive(Wire.Message(.welcome, run: Self.run, body: Wire.Welcome(run: Self.specification(), heartbeat: 0.25)))
        h.handle(.loaded(runID: Self.run.description, .success(.init(ready: Self.ready, parameterCount: 3))))
        #expect(h.loads == 1 && h.sent == [.hello, .ready])
        // Heartbeats every 0.25 s (not 1 s), and silence is death after 1.25 s (not 5 s).
        h.tick(0.3)
        #expect(h.sent.last == .heartbeat)
        h.tick(1.0)
        #expect(h.actions.contains { if case .disconnect = $0 { true } else { false } })
        // The first reconnect comes after 0.25 s, and the delays double up to 5 s (not 20 s).
        h.tick(0.3)
        #expect(h.connects == 2)
        var gaps: [Double] = []
        var last = h.now
        while h.now < 60 {
            let before = h.connects
            h.tick(0.05)
            if h.connects > before { gaps.append(h.now - last); last = h.now }
        }
        #expect((gaps.max() ?? 0) < 5 + 1.25 + 0.1 && (gaps.max() ?? 0) > 5, "reconnect gaps \(gaps)")
    }

    @Test func idleTimeoutEndsAWorkerNobodyTalksTo() {
        var h = Harness(idleTimeout: 12)
        h.handle(.start)
        for _ in 0..<30 where h.exit == nil { h.tick(1) }
        #expect(h.exit == .idle)
        #expect(h.now > 12 && h.now < 15)
    }

    /// Without an idle timeout (what local workers run with) a worker whose registered
    /// coordinator falls silent keeps reconnecting however long the silence lasts: a day of
    /// injected time, where local workers used to leave after 120 s.
    @Test func withoutAnIdleTimeoutSilenceNeverEndsTheWorker() {
        var h = Harness()
        h.register()
        for _ in 0..<86_400 { h.tick(1) }
        #expect(h.exit == nil)
        #expect(h.connects > 1000)
    }

    @Test func tasksQueueWithTheirConnectionAndResetRegistersAgain() {
        var h = Harness()
        h.register()
        h.receive(Wire.Message(.params, run: Self.run, batch: 4, body: Wire.Params(count: 3), payload: [1, 2, 3]))
        h.receive(Wire.Message(.task, run: Self.run, batch: 4, body: Wire.Task(slot: 1, kind: .metaGradient, ref: .init(task: 0, index: 9))))
        let stored = h.actions.contains { if case .storeParameters(4, [1, 2, 3]) = $0 { true } else { false } }
        #expect(stored)
        // Parameters of any other size than the model's never reach the compute threads.
        for wrong: [Float] in [[1], [1, 2, 3, 4], [1, .nan, 3]] {
            let count = h.actions.count
            h.receive(Wire.Message(.params, run: Self.run, batch: 5, body: Wire.Params(count: wrong.count), payload: wrong))
            #expect(!h.actions[count...].contains { if case .storeParameters = $0 { true } else { false } }, "\(wrong)")
        }
        let queued = h.actions.contains { if case .enqueue(4, let t, 1) = $0 { t.slot == 1 } else { false } }
        #expect(queued)
        // Another run's parameters and tasks are dropped.
        let other = Wire.RunID(bytes: Array(repeating: 7, count: 16))
        let count = h.actions.count
        h.receive(Wire.Message(.task, run: other, batch: 4, body: Wire.Task(slot: 2, kind: .metaGradient, ref: .init(task: 0, index: 1))))
        #expect(!h.actions[count...].contains { if case .enqueue = $0 { true } else { false } })
        // RESET: the queue is cleared and the worker registers again.
        h.receive(Wire.Message(.reset, run: Self.run, body: Wire.Notice(reason: "unknown worker")))
        #expect(h.sent.last == .hello)
        #expect(h.actions.suffix(3).contains { if case .clearQueue = $0 { true } else { false } })
    }

    @Test func resultsOfAnOlderConnectionAreDropped() {
        var h = Harness()
        h.register()
        let result = Wire.Message(.result, run: Self.run, batch: 1, body: Wire.Result(slot: 0, kind: .metaGradient, queryLoss: 1,
                                                                                     queryDice: 0, supportLoss: 1, objective: 1, seconds: 1),
                                  payload: [0]).encode()
        h.handle(.computed(generation: 1, frames: result))
        #expect(h.actions.contains { if case .forward = $0 { true } else { false } })
        h.tick(5.5)
        h.tick(1.1)   // reconnected: generation 2
        let count = h.actions.count
        h.handle(.computed(generation: 1, frames: result))
        #expect(!h.actions[count...].contains { if case .forward = $0 { true } else { false } })
    }

    @Test func malformedMessagesAreDroppedAndDoNotCountAsContact() {
        var h = Harness()
        h.register()
        h.tick(3)
        h.handle(.received([[1, 2, 3]]))
        h.tick(2.6)   // 5.6 s since the coordinator was last heard: garbage did not refresh it
        #expect(h.actions.contains { if case .disconnect = $0 { true } else { false } })
    }

    /// The coordinator's ZAP handler saying no: the worker tries again after the reconnect
    /// delay (libzmq does not), and the third refusal in a row ends it with the reason. An
    /// unlisted worker once took 13 s to say so, waiting out the heartbeat expiry each time.
    @Test func repeatedAuthenticationRefusalsRefuseTheWorker() {
        var h = Harness(secure: true)
        h.handle(.start)
        h.handle(.handshake(.refusedAuthentication))
        h.tick(1.1)
        h.handle(.handshake(.refusedAuthentication))
        h.tick(2.1)
        #expect(h.connects == 3 && h.exit == nil)
        h.handle(.handshake(.refusedAuthentication))
        #expect(h.exit == .refused("the coordinator does not accept this worker's key (not in its authorized keys)"))
        #expect(h.now < 3.5, "refused after \(h.now) s")
    }

    /// A broken handshake is ambiguous: a wrong key, encryption on one side only, or a relay
    /// or tunnel that accepted the connection with no coordinator behind it yet, which closes
    /// it the same way. A worker once gave up within 0.3 s of its start, saying it was refused,
    /// while the coordinator behind its relay was still starting (libzmq tries again every
    /// 0.1 s); and libzmq gave up on some broken connections by itself, so a plaintext worker
    /// said why only after the heartbeat expiry. Each broken handshake now closes the
    /// connection, the worker tries again after the reconnect delay, which grows, and gives
    /// up only when the failures persist.
    @Test func aBrokenHandshakeIsTriedAgainAfterTheReconnectDelay() {
        var h = Harness()
        h.handle(.start)
        h.handle(.handshake(.failed))
        #expect(h.actions.contains { if case .disconnect = $0 { true } else { false } })
        h.handle(.handshake(.failed))   // the closed connection's late event is not another try
        h.tick(0.9)
        #expect(h.connects == 1 && h.exit == nil)
        h.tick(0.2)   // the first delay is 1 s
        #expect(h.connects == 2)
        // The coordinator came up behind the relay: the count and the delay start again.
        h.handle(.handshake(.succeeded))
        h.handle(.handshake(.failed))
        h.tick(1.1)
        #expect(h.connects == 3)
        h.handle(.handshake(.failed))
        h.tick(1.1)
        #expect(h.connects == 3, "the delay doubled")
        h.tick(1)
        #expect(h.connects == 4 && h.exit == nil)
        h.handle(.handshake(.failed))
        #expect(h.exit == .refused("the handshake fails: the coordinator requires CURVE encryption (give --secret-key and --coordinator-key), or something between closes every connection"))
    }

    @Test func signalSaysBye() {
        var h = Harness()
        h.register()
        h.handle(.signal(15))
        #expect(h.sent.last == .bye)
        #expect(h.exit == .signal(15))
    }

    @Test func workQueueDropsTasksOfOtherBatchesWhenNewParametersArrive() {
        let queue = WorkQueue()
        let task = Wire.Task(slot: 0, kind: .metaGradient, ref: .init(task: 0, index: 0))
        queue.store(batch: 1, [1])
        queue.enqueue(.init(generation: 1, batch: 1, task: task))
        queue.enqueue(.init(generation: 1, batch: 1, task: task))
        queue.store(batch: 2, [2])
        #expect(queue.count == 0)
        queue.enqueue(.init(generation: 1, batch: 2, task: task))
        queue.store(batch: 3, [3])
        queue.store(batch: 4, [4])
        queue.enqueue(.init(generation: 1, batch: 2, task: task))
        // Batch 2's parameters were dropped (only the two newest are kept): the task gets none.
        let next = queue.next()
        #expect(next?.0.batch == 2 && next?.1 == nil)
        queue.enqueue(.init(generation: 1, batch: 4, task: task))
        #expect(queue.next()?.1 == [4])
        queue.stop()
        #expect(queue.next() == nil)
    }
}
