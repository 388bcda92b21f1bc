import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct PretrainingRunTests {
    static let common = ["--image-size", "32", "--base-channels", "8", "--meta-batch", "4", "--seed", "11", "--checkpoint-every", "0"]
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// Pretraining then meta-training from its result, through the real commands.
    @Test func miniaturePretrainThenTrain() throws {
        let pre = try coordinator(["pretrain"] + Self.common + ["--outer-steps", "4", "--in-process", "--threads", "2",
                                                                "--checkpoint-dir", folder.path + "/pre"], name: "pretrain")
        #expect(pre.waitExit() == 0, "\(pre.stderr)")
        #expect(pre.stderr.contains("pseudo/synthetic/ct"))
        let train = try coordinator(["train"] + Self.common + ["--outer-steps", "3", "--in-process", "--threads", "2",
                                                               "--init-from", folder.path + "/pre/final.safetensors",
                                                               "--checkpoint-dir", folder.path + "/train"], name: "train-from-pretrained")
        #expect(train.waitExit() == 0, "\(train.stderr)")
        #expect(train.stderr.contains("initial parameters from"))
        let scratch = try coordinator(["train"] + Self.common + ["--outer-steps", "3", "--in-process", "--threads", "2",
                                                                 "--checkpoint-dir", folder.path + "/scratch"], name: "train-from-scratch")
        #expect(scratch.waitExit() == 0)
        #expect(train.finalHash != nil && train.finalHash != scratch.finalHash, "the pretrained start made no difference")
    }

    /// The masked-reconstruction pretext through the real command: deterministic, a start
    /// that `train --init-from` takes, and clear errors for what it cannot do.
    @Test func maskedReconstructionPretrainThenTrain() throws {
        func pretrain(_ out: String, _ extra: [String] = []) throws -> ChildProcess {
            try coordinator(["pretrain", "--pretext", "masked"] + Self.common + ["--outer-steps", "6", "--checkpoint-dir", folder.path + "/" + out] + extra,
                            name: "masked-" + out)
        }
        let first = try pretrain("masked")
        #expect(first.waitExit() == 0, "\(first.stderr)")
        #expect(first.stderr.contains("masked reconstruction on 4 group(s)"), "\(first.stderr)")
        let again = try pretrain("masked-again")
        #expect(again.waitExit() == 0)
        #expect(first.finalHash != nil && first.finalHash == again.finalHash, "the same command gave other parameters")
        let noisier = try pretrain("noisier", ["--noise", "0.3"])
        #expect(noisier.waitExit() == 0)
        #expect(noisier.finalHash != first.finalHash, "--noise made no difference")

        let train = try coordinator(["train"] + Self.common + ["--outer-steps", "2", "--in-process", "--threads", "2",
                                                               "--init-from", folder.path + "/masked/final.safetensors",
                                                               "--checkpoint-dir", folder.path + "/from-masked"], name: "train-from-masked")
        #expect(train.waitExit() == 0, "\(train.stderr)")
        let scratch = try coordinator(["train"] + Self.common + ["--outer-steps", "2", "--in-process", "--threads", "2",
                                                                 "--checkpoint-dir", folder.path + "/masked-scratch"], name: "masked-scratch")
        #expect(scratch.waitExit() == 0)
        #expect(train.finalHash != nil && train.finalHash != scratch.finalHash, "the pretrained start made no difference")

        let bad = try pretrain("bad", ["--masked-fraction", "1.5"])
        #expect(bad.waitExit() != 0)
        #expect(bad.stderr.contains("--masked-fraction"), "\(bad.stderr)")
        let resume = try pretrain("masked", ["--resume"])
        #expect(resume.waitExit() != 0)
        #expect(resume.stderr.contains("keeps no checkpoints"), "\(resume.stderr)")
    }

    /// Meta-training with pseudo-tasks beside the labelled tasks: the same result in this
    /// process and on a worker process (which rebuilds the pseudo-tasks from the run's
    /// description and split), and not the result without them.
    @Test func pseudoTasksBesideTheLabelledTasksOnAWorker() throws {
        let args = ["train"] + Self.common + ["--outer-steps", "4", "--pseudo-tasks"]
        let inProcess = try coordinator(args + ["--in-process", "--threads", "2", "--checkpoint-dir", folder.path + "/in"], name: "aug-in")
        #expect(inProcess.waitExit() == 0, "\(inProcess.stderr)")
        let worker = try coordinator(args + ["--local-workers", "1", "--threads", "2", "--checkpoint-dir", folder.path + "/w"], name: "aug-w")
        #expect(worker.waitExit() == 0, "\(worker.stderr.suffix(3000))")
        let plain = try coordinator(["train"] + Self.common + ["--outer-steps", "4", "--in-process", "--threads", "2",
                                                               "--checkpoint-dir", folder.path + "/plain"], name: "plain")
        #expect(plain.waitExit() == 0)
        #expect(inProcess.finalHash != nil && inProcess.finalHash == worker.finalHash)
        #expect(inProcess.finalHash != plain.finalHash, "the pseudo-tasks made no difference")
    }

    /// Pretraining on workers survives a worker kill with the in-process result.
    @Test func pretrainingSurvivesAWorkerKill() throws {
        let reference = try coordinator(["pretrain"] + Self.common + ["--outer-steps", "15", "--in-process", "--threads", "2",
                                                                      "--checkpoint-dir", folder.path + "/ref"], name: "pre-ref")
        #expect(reference.waitExit() == 0, "\(reference.stderr)")
        let port = freePort()
        // Heartbeats every 0.25 s: the killed worker is dead after 1.25 s, and the finished run
        // waits at most 6.25 s for it to come back.
        let c = try coordinator(["pretrain"] + Self.common + ["--outer-steps", "15", "--bind", "tcp://127.0.0.1:\(port)", "--min-workers", "2",
                                                              "--heartbeat", "0.25", "--checkpoint-dir", folder.path + "/dist"], name: "pre-dist")
        let workers = try (0..<2).map {
            try ChildProcess(executable("medmaml-worker"), ["--connect", "tcp://127.0.0.1:\(port)", "--name", "w\($0)", "--idle-timeout", "60"],
                             name: "pre-w\($0)", folder: folder.path)
        }
        #expect(c.waitFor("step 5/15"))
        workers[1].signal(SIGKILL)
        #expect(c.waitExit() == 0, "\(c.stderr.suffix(3000))\nworker 0: \(workers[0].stderr.suffix(1500))")
        #expect(c.finalHash == reference.finalHash)
    }
}
