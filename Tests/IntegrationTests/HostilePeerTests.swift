import Cluster
import Core
import Engine
import Foundation
import MetaLearning
import Testing
import TestSupport
import Training
import Transport
import Wire

/// Hostile and broken peers and files, with real processes on real sockets: nothing a peer
/// sends may stall the run, crash or corrupt a process, or freeze or poison training.
@Suite(.serialized) struct HostilePeerTests {
    static let common = ["--image-size", "32", "--base-channels", "8", "--meta-batch", "4", "--seed", "3", "--log-level", "info"]
    let folder = TemporaryFolder()

    /// The in-process hash for `steps` steps (cached per step count).
    static let references = ThreadSafeBox<[Int: String]>([:])
    func reference(steps: Int) throws -> String {
        if let h = Self.references.value[steps] { return h }
        let p = try ChildProcess(executable("medmaml-coordinator"),
                                 ["train"] + Self.common + ["--steps", "\(steps)", "--in-process", "--threads", "2", "--checkpoint-every", "0",
                                                            "--checkpoint-dir", folder.path + "/reference-\(steps)"],
                                 name: "reference-\(steps)", folder: folder.path)
        #expect(p.waitExit() == 0, "\(p.stderr)")
        let hash = try #require(p.finalHash)
        Self.references.mutate { $0[steps] = hash }
        return hash
    }

    func coordinator(steps: Int, port: Int, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"),
                         ["train"] + Self.common + ["--steps", "\(steps)", "--bind", "tcp://127.0.0.1:\(port)",
                                                    "--checkpoint-dir", folder.path + "/run"] + extra,
                         name: "coordinator", folder: folder.path)
    }

    func worker(port: Int, name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-worker"), ["--connect", "tcp://127.0.0.1:\(port)", "--name", name, "--idle-timeout", "60"],
                         name: name, folder: folder.path)
    }

    /// A registered worker that holds a task sends one message carrying another run's id.
    /// It must be refused and its task given to someone else: the run completes.
    @Test func strayMessageOfAnotherRunDoesNotStall() throws {
        let port = freePort()
        let c = try coordinator(steps: 8, port: port, extra: ["--min-workers", "2", "--checkpoint-every", "0"])
        let honest = try worker(port: port, name: "honest")
        let rogue = try ScriptedWorker(endpoint: "tcp://127.0.0.1:\(port)")
        try rogue.register(name: "rogue")
        #expect(try rogue.wait(for: .task, timeout: 60) != nil, "the rogue was never given a task")
        var header = Wire.Message(.heartbeat, run: Wire.RunID(bytes: Array(repeating: 0xAA, count: 16)), body: Wire.Empty()).encode()
        header[1] = Array("{}".utf8)
        try rogue.send(frames: header)
        #expect(try rogue.wait(for: .refused, timeout: 20) != nil)
        #expect(c.waitExit(timeout: 180) == 0, "the run stalled:\n\(c.stderr.suffix(3000))")
        #expect(c.finalHash == (try reference(steps: 8)))
        _ = honest
    }

    /// One worker answers with finite but huge (1e30) gradients. They are rejected and
    /// re-run elsewhere; Adam's state stays finite; the run ends with the in-process result
    /// and no checkpoint ever holds a non-finite value.
    @Test func hugeGradientIsRejectedAndNeverReachesAdam() throws {
        let port = freePort()
        let c = try coordinator(steps: 8, port: port, extra: ["--min-workers", "2", "--checkpoint-every", "2"])
        let honest = try worker(port: port, name: "honest")
        let rogue = try ScriptedWorker(endpoint: "tcp://127.0.0.1:\(port)")
        try rogue.register(name: "rogue")
        var answered = 0
        while c.isRunning {
            let m = try rogue.next(timeout: 1)
            if m?.command == .shutdown || m?.command == .refused { break }
            while let (batch, task) = rogue.tasks.first {
                rogue.tasks.removeFirst()
                try rogue.answer(task, batch: batch, gradient: [Float](repeating: 1e30, count: rogue.parameterCount))
                answered += 1
            }
        }
        #expect(answered >= 1)
        #expect(c.waitExit(timeout: 180) == 0, "\(c.stderr.suffix(3000))")
        #expect(c.finalHash == (try reference(steps: 8)), "\(c.stderr.suffix(3000))")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: folder.path + "/run").filter { $0.hasPrefix("checkpoint-") }
        #expect(!checkpoints.isEmpty)
        for name in checkpoints {
            let checkpoint = try Checkpoint.read(path: folder.path + "/run/" + name)
            #expect(checkpoint.meta.allSatisfy(\.isFinite) && checkpoint.optimizer.v.allSatisfy(\.isFinite), "\(name) holds non-finite values")
        }
        _ = honest
    }

    /// A rogue coordinator sends PARAMS whose payload is shorter than the model, then a TASK.
    /// The worker must drop the parameters (not write past a buffer), keep talking, and obey
    /// the SHUTDOWN that follows.
    @Test func shortParametersDoNotCorruptAWorker() throws {
        var config = TrainingConfig()
        config.meta = MetaConfig(model: UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8, groups: 4).spec)
        let spec = syntheticRunSpec(config, size: 32)
        let run = Wire.RunID(hex: spec.runID)!
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router)
        let port = freePort()
        try router.bind("tcp://127.0.0.1:\(port)")
        let w = try worker(port: port, name: "victim")
        func receive(_ command: Wire.Command, timeout: Double = 60) throws -> [UInt8]? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                guard try ZMQSocket.poll([router], timeoutMilliseconds: 50)[0], let frames = try router.receive(dontWait: true),
                      let m = try? Wire.Message(frames: Array(frames.dropFirst()), maximumPayload: 1 << 24) else { continue }
                if m.command == command { return frames[0] }
            }
            return nil
        }
        let id = try #require(try receive(.hello))
        try router.send([id] + Wire.Message(.welcome, run: run, body: Wire.Welcome(run: spec.wireForm)).encode())
        #expect(try receive(.ready) != nil, "\(w.stderr)")
        try router.send([id] + Wire.Message(.params, run: run, batch: 0, body: Wire.Params(count: 1), payload: [1]).encode())
        try router.send([id] + Wire.Message(.task, run: run, batch: 0, body: Wire.Task(slot: 0, kind: .metaGradient,
                                                                                       ref: .init(task: 0, index: 0))).encode())
        // The worker answers that it has no usable parameters, and keeps heartbeating.
        #expect(try receive(.failed, timeout: 30) != nil, "\(w.stderr)")
        #expect(try receive(.heartbeat, timeout: 5) != nil)
        #expect(w.isRunning, "the worker died: \(w.stderr)")
        try router.send([id] + Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "test over")).encode())
        #expect(w.waitExit(timeout: 30) == 0, "\(w.stderr)")
        #expect(w.stderr.contains("invalid parameters"))
    }
}
