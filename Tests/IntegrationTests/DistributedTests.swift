import Cluster
import Datasets
import Foundation
import MetaLearning
import Testing
import TestSupport
import Training
import Transport
import Wire

/// Real coordinator and worker processes on loopback, with real faults. Every run must end
/// with the same `final_params_sha256` as the same run `--in-process`.
@Suite(.serialized) struct DistributedTests {
    /// Heartbeats every 0.25 s, so a silent worker is dead after 1.25 s and a finished run
    /// waits at most 6.25 s for one that lost its connection: the faults below are noticed
    /// within short runs of a small model.
    static let common = ["--image-size", "32", "--base-channels", "4", "--meta-batch", "4", "--seed", "3",
                         "--checkpoint-every", "5", "--log-level", "info", "--heartbeat", "0.25"]
    let folder = TemporaryFolder()

    /// The in-process reference hash for `steps` steps (cached per step count).
    static let references = ThreadSafeBox<[Int: String]>([:])
    func reference(steps: Int) throws -> String {
        if let h = Self.references.value[steps] { return h }
        let p = try ChildProcess(executable("medmaml-coordinator"),
                                 ["train"] + Self.common + ["--outer-steps", "\(steps)", "--in-process", "--threads", "2",
                                                            "--checkpoint-dir", folder.path + "/reference-\(steps)"],
                                 name: "reference-\(steps)", folder: folder.path)
        #expect(p.waitExit() == 0, "\(p.stderr)")
        let hash = try #require(p.finalHash)
        Self.references.mutate { $0[steps] = hash }
        return hash
    }

    func coordinator(steps: Int, port: Int, name: String = "coordinator", extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"),
                         ["train"] + Self.common + ["--outer-steps", "\(steps)", "--bind", "tcp://127.0.0.1:\(port)",
                                                    "--checkpoint-dir", folder.path + "/run"] + extra,
                         name: name, folder: folder.path)
    }

    func worker(port: Int, threads: Int = 1, name: String, extra: [String] = [],
                environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-worker"),
                         ["--connect", "tcp://127.0.0.1:\(port)", "--threads", "\(threads)", "--name", name,
                          "--idle-timeout", "60"] + extra,
                         name: name, folder: folder.path, environment: environment)
    }

    func expectSameHash(_ c: ChildProcess, steps: Int, _ comment: String = "") throws {
        #expect(c.waitExit() == 0, "coordinator failed: \(c.stderr.suffix(3000))")
        #expect(c.finalHash == (try reference(steps: steps)), "\(comment)\n\(c.stderr.suffix(3000))")
    }

    @Test(arguments: [(1, 1), (2, 1), (1, 2)])
    func topologiesGiveTheInProcessResult(_ shape: (workers: Int, threads: Int)) throws {
        let port = freePort()
        let c = try coordinator(steps: 6, port: port, extra: ["--min-workers", "\(shape.workers)"])
        #expect(c.waitFor("waiting for workers"))
        let workers = try (0..<shape.workers).map { try worker(port: port, threads: shape.threads, name: "w\($0)") }
        try expectSameHash(c, steps: 6, "\(shape.workers) worker(s) x \(shape.threads) thread(s)")
        for w in workers { #expect(w.waitExit(timeout: 20) == 0, "\(w.stderr)") }
    }

    @Test func workerKilledMidStep() throws {
        let port = freePort()
        let c = try coordinator(steps: 12, port: port, extra: ["--min-workers", "2"])
        let w0 = try worker(port: port, name: "w0"), w1 = try worker(port: port, name: "w1")
        #expect(c.waitFor("step 3/12"))
        w1.signal(SIGKILL)
        try expectSameHash(c, steps: 12)
        #expect(logged(c.stderr, "worker silent", ["worker": "w1"]) || logged(c.stderr, "backup copy", ["backup": "w0"]))
        _ = w0
    }

    @Test func workerStoppedLongerThanTheDeadlineThenContinued() throws {
        let port = freePort()
        let c = try coordinator(steps: 12, port: port, extra: ["--min-workers", "2"])
        let w0 = try worker(port: port, name: "w0"), w1 = try worker(port: port, name: "w1")
        #expect(c.waitFor("step 3/12"))
        w1.signal(SIGSTOP)
        #expect(c.waitFor("declared dead", timeout: 30))
        w1.signal(SIGCONT)
        try expectSameHash(c, steps: 12)
        _ = w0
    }

    /// A worker that lost its connection and comes back after the end (a batch system restarted
    /// it, or it was stopped) is told the run is complete and exits 0: the coordinator waits a
    /// while for it by name, and stops waiting as soon as it has heard.
    @Test func aWorkerThatComesBackAfterTheEndIsToldTheRunIsComplete() throws {
        let port = freePort()
        let c = try coordinator(steps: 20, port: port, extra: ["--min-workers", "2"])
        let w0 = try worker(port: port, name: "w0"), w1 = try worker(port: port, name: "w1")
        #expect(c.waitFor("step 3/20"))
        w1.signal(SIGSTOP)
        #expect(c.waitForLog("worker silent", ["worker": "w1"], timeout: 30))
        #expect(c.waitFor("worker(s) that lost their connection", timeout: 120), "\(c.stderr.suffix(2000))")
        #expect(w0.waitExit(timeout: 30) == 0, "\(w0.stderr.suffix(2000))")
        w1.signal(SIGCONT)
        #expect(w1.waitExit(timeout: 40) == 0, "\(w1.stderr.suffix(2000))")
        #expect(w1.stderr.contains("shut down by the coordinator: the run is complete"), "\(w1.stderr.suffix(2000))")
        try expectSameHash(c, steps: 20)
        #expect(logged(c.stderr, "told a worker that came back that the run is over", ["worker": "w1"]), "\(c.stderr.suffix(2000))")
    }

    /// A worker that reaches its coordinator through a relay (a proxy, a tunnel) and starts
    /// first: while nothing listens behind it, the relay accepts each connection and closes
    /// it, which breaks the handshake as a wrong key does. Such a worker once gave up within
    /// 0.3 s, saying it was refused; it tries again after the reconnect delay and joins.
    @Test func aWorkerBehindARelayThatStartsFirstJoins() throws {
        let port = freePort()
        let relay = try TCPProxy(upstreamPort: port)
        defer { relay.stop() }
        let w = try worker(port: relay.port, name: "relayed")
        #expect(w.waitFor("handshake with the coordinator failed", timeout: 30), "\(w.stderr)")
        usleep(500_000)
        try #require(w.isRunning, "the worker gave up: \(w.stderr.suffix(1000))")
        let c = try coordinator(steps: 6, port: port)
        #expect(c.waitExit(timeout: 120) == 0, "\(c.stderr.suffix(3000))")
        #expect(c.finalHash == (try reference(steps: 6)))
        #expect(w.waitExit(timeout: 20) == 0, "\(w.stderr.suffix(2000))")
    }

    @Test func workerJoiningMidRun() throws {
        let port = freePort()
        let c = try coordinator(steps: 20, port: port)
        let w0 = try worker(port: port, name: "w0")
        #expect(c.waitFor("step 5/20"))
        let w1 = try worker(port: port, name: "late")
        #expect(c.waitForLog("worker ready", ["worker": "late"]))
        try expectSameHash(c, steps: 20)
        _ = (w0, w1)
    }

    @Test func coordinatorKilledAndResumed() throws {
        let port = freePort()
        let first = try coordinator(steps: 20, port: port, name: "coordinator-1")
        let w0 = try worker(port: port, name: "w0"), w1 = try worker(port: port, name: "w1")
        #expect(first.waitFor("step 8/20"))
        first.signal(SIGKILL)
        _ = first.waitExit()
        let second = try coordinator(steps: 20, port: port, name: "coordinator-2", extra: ["--resume"])
        #expect(second.waitFor("resuming run"))
        try expectSameHash(second, steps: 20)
        #expect(logged(second.stderr, "worker ready", ["worker": "w0"]) && logged(second.stderr, "worker ready", ["worker": "w1"]),
                "workers did not re-register: \(second.stderr.suffix(2000))")
        _ = (w0, w1)
    }

    @Test func sigtermCheckpointsAndResumeContinues() throws {
        let port = freePort()
        let first = try coordinator(steps: 20, port: port, name: "coordinator-1")
        let w0 = try worker(port: port, threads: 2, name: "w0")
        #expect(first.waitFor("step 6/20"))
        first.signal(SIGTERM)
        #expect(first.waitExit() == 128 + SIGTERM, "\(first.stderr.suffix(1500))")
        #expect(first.stderr.contains("continue with --resume"))
        let second = try coordinator(steps: 20, port: port, name: "coordinator-2", extra: ["--resume"])
        try expectSameHash(second, steps: 20)
        _ = w0
    }

    /// Garbage, truncated frames, wrong versions, oversize messages and NaN gradients from a
    /// rogue client are dropped; the run goes on unaffected.
    @Test func rogueClientChangesNothing() throws {
        let port = freePort()
        let c = try coordinator(steps: 20, port: port)
        let honest = try worker(port: port, name: "honest")
        #expect(c.waitForLog("worker ready", ["worker": "honest"]))
        let rogue = RogueClient(port: port)
        try rogue.sendGarbage()
        let nanResults = try rogue.registerAndAnswerWithNaN(until: { !c.isRunning })
        try expectSameHash(c, steps: 20)
        #expect(nanResults >= 1)
        #expect(c.stderr.contains("dropped a malformed message"))
        #expect(c.stderr.contains("non-finite gradient"))
        #expect(c.stderr.contains("quarantined"))
        _ = honest
    }

    /// Numerics travel with the run (protocol 5): a worker whose environment asks for
    /// unfolded convolutions (other bits than oneDNN's primitives) computes with the run's
    /// instead, is not refused, and the run ends with the in-process hash.
    @Test func workerComputesWithTheRunsNumerics() throws {
        let port = freePort()
        let c = try coordinator(steps: 6, port: port)
        let w = try worker(port: port, name: "unfolding", environment: ["MEDMAML_CONV": "im2col"])
        try expectSameHash(c, steps: 6)
        #expect(w.waitExit(timeout: 20) == 0, "\(w.stderr)")
        #expect(!c.stderr.contains("refused a worker"), "\(c.stderr.suffix(2000))")
    }

    /// bf16 precision travels with the run and pins its kernels (avx512-bf16), so workers of
    /// one and two threads end a bf16 run with the in-process bf16 hash, which differs from
    /// the Float32 one. Where the CPU lacks AVX512-BF16 the run is refused before it starts,
    /// saying why.
    @Test func bf16RunGivesTheInProcessBF16Result() throws {
        let bf16 = ["--precision", "bf16"]
        func inProcess(_ name: String) throws -> ChildProcess {
            try ChildProcess(executable("medmaml-coordinator"),
                             ["train"] + Self.common + ["--outer-steps", "6", "--in-process", "--threads", "2",
                                                        "--checkpoint-dir", folder.path + "/" + name] + bf16,
                             name: name, folder: folder.path)
        }
        guard machineHasBF16 else {
            let refused = try inProcess("refused")
            #expect(refused.waitExit() != 0)
            #expect(refused.stderr.contains("AVX512-BF16"), "\(refused.stderr.suffix(2000))")
            return
        }
        let reference = try inProcess("bf16-reference")
        #expect(reference.waitExit() == 0, "\(reference.stderr.suffix(2000))")
        let hash = try #require(reference.finalHash)
        #expect(hash != (try self.reference(steps: 6)))

        let port = freePort()
        let c = try coordinator(steps: 6, port: port, extra: bf16 + ["--min-workers", "2"])
        #expect(c.waitFor("waiting for workers"))
        let workers = [try worker(port: port, name: "one"), try worker(port: port, threads: 2, name: "two")]
        #expect(c.waitExit() == 0, "\(c.stderr.suffix(3000))")
        #expect(c.finalHash == hash, "\(c.stderr.suffix(3000))")
        for w in workers { #expect(w.waitExit(timeout: 20) == 0, "\(w.stderr)") }
    }

    /// Keeping the inner steps' passes changes memory and speed, never bits: workers that keep
    /// all, some or none of them (each says which) serve one run, which ends with the
    /// in-process hash.
    @Test func workersKeepingInnerStepsGiveTheInProcessResult() throws {
        let port = freePort()
        let c = try coordinator(steps: 6, port: port, extra: ["--min-workers", "3"])
        #expect(c.waitFor("waiting for workers"))
        let settings = ["5", "2", "0"]
        // Two choose by flag, one by the environment variable of older set-ups.
        let workers = try settings.map { keep in
            keep == "0" ? try worker(port: port, name: "keep\(keep)", environment: ["MEDMAML_KEEP_STEPS": keep])
                        : try worker(port: port, name: "keep\(keep)", extra: ["--keep-steps", keep])
        }
        try expectSameHash(c, steps: 6)
        for (w, keep) in zip(workers, settings) {
            #expect(w.waitExit(timeout: 20) == 0, "\(w.stderr)")
            #expect(logged(w.stderr, "loading data", ["keep_steps": keep]), "\(w.stderr)")
        }
    }

    @Test func workerWithOtherDataIsRefused() throws {
        // The coordinator reads the PNG fixture; the worker a copy with one image changed.
        let data = try folder.copy(fixturePath("pngtasks"))
        let other = folder.path + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let changed = try folder.copy(data, as: "other/pngtasks")
        let png = try PNG.encode(width: 24, height: 20, channels: 1, pixels: [UInt8](repeating: 7, count: 480))
        try png.write(to: URL(fileURLWithPath: changed + "/discs8/images/im0.png"))
        let port = freePort()
        let c = try ChildProcess(executable("medmaml-coordinator"),
                                 ["train", "--dataset", data, "--image-size", "16", "--base-channels", "4", "--shots", "2",
                                  "--query", "1", "--meta-batch", "2", "--outer-steps", "3", "--bind", "tcp://127.0.0.1:\(port)",
                                  "--checkpoint-dir", folder.path + "/png-run"],
                                 name: "png-coordinator", folder: folder.path)
        let bad = try worker(port: port, name: "bad", extra: ["--data-root", other])
        #expect(bad.waitExit(timeout: 60) == 2, "\(bad.stderr)")
        #expect(bad.stderr.contains("refused by the coordinator") && bad.stderr.contains("dataset fingerprint"))
        #expect(logged(c.stderr, "refused a worker", ["worker": "bad"]))
        let good = try worker(port: port, name: "good")
        #expect(c.waitExit() == 0, "\(c.stderr.suffix(2000))")
        _ = good
    }
}

/// A client that speaks the protocol badly on purpose.
final class RogueClient {
    let context = ZMQContext()
    let socket: ZMQSocket
    let port: Int

    init(port: Int) {
        self.port = port
        socket = try! ZMQSocket(context, .dealer)
        try! socket.connect("tcp://127.0.0.1:\(port)")
    }

    func sendGarbage() throws {
        let header = Wire.Message(.heartbeat, run: .none, body: Wire.Empty()).encode()
        try socket.send([[0xDE, 0xAD, 0xBE, 0xEF]])                                  // garbage, one frame
        try socket.send([Array(header[0].prefix(10)), []])                            // truncated header
        var wrongVersion = header
        wrongVersion[0][4] = 77
        try socket.send(wrongVersion)                                                 // wrong version
        try socket.send(header + [[1, 2, 3]] + [[4]])                                 // too many frames
        try socket.send([header[0], Array(repeating: 0x7B, count: 2 << 20)])          // oversize body
        usleep(200_000)
    }

    /// Registers properly, then answers every task with a NaN gradient until `stop()`.
    func registerAndAnswerWithNaN(until stop: () -> Bool) throws -> Int {
        let fresh = try ZMQSocket(context, .dealer)
        try fresh.connect("tcp://127.0.0.1:\(port)")
        try fresh.send(Wire.Message(.hello, run: .none, body: Wire.Hello(name: "rogue", threads: 1, previousRun: nil)).encode())
        var run = Wire.RunID.none
        var answered = 0
        var count = 0
        let deadline = Date().addingTimeInterval(120)
        while !stop() && Date() < deadline {
            guard try ZMQSocket.poll([fresh], timeoutMilliseconds: 100)[0], let frames = try fresh.receive(dontWait: true),
                  let m = try? Wire.Message(frames: frames, maximumPayload: 1 << 26)
            else { continue }
            switch m.command {
            case .welcome:
                let welcome = try m.decode(Wire.Welcome.self)
                run = Wire.RunID(hex: welcome.run.runID)!
                let spec = try RunSpec(wire: welcome.run)
                count = try MetaLayout(config: spec.training.meta).count
                let source = try spec.dataset.openOnWorker(dataRoot: nil, split: spec.split, logger: testLogger)
                let numerics = try NumericsCheck.fingerprint(run: spec, source: source)
                try fresh.send(Wire.Message(.ready, run: run, body: Wire.Ready(datasetFingerprint: source.identity.fingerprint,
                                                                              numericsFingerprint: numerics, kernel: "rogue")).encode())
            case .task:
                let task = try m.decode(Wire.Task.self)
                let result = Wire.Result(slot: task.slot, kind: task.kind, queryLoss: 1, queryDice: 0, supportLoss: 1, objective: 1, seconds: 0)
                try fresh.send(Wire.Message(.result, run: run, batch: m.batch, body: result,
                                            payload: [Float](repeating: .nan, count: count)).encode())
                answered += 1
            case .heartbeat:
                try fresh.send(Wire.Message(.heartbeat, run: run, body: Wire.Empty()).encode())
            case .shutdown, .refused:
                return answered
            default:
                break
            }
        }
        return answered
    }
}
