import Datasets
import Foundation
import Testing
import TestSupport
import Training

/// Broken and hostile files and file systems through the real executables: a clear error or
/// a warning, never a trap.
@Suite(.serialized) struct BrokenFileTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    func expectClearError(_ p: ChildProcess, mentioning fragment: String, _ comment: String = "") {
        let status = p.waitExit(timeout: 120)
        #expect(status != nil && status != 0, "\(comment) succeeded: \(p.stderr)")
        #expect(status != 132 && status != 133 && status != 134 && status != 139, "\(comment) crashed with status \(status ?? -1)")
        #expect(p.stderr.contains(fragment), "\(comment): \(p.stderr)")
        #expect(!p.stderr.contains("Fatal error") && !p.stderr.contains("Backtrace"), "\(comment) trapped: \(p.stderr)")
    }

    /// A dataset.json label key above 255 is a clear error naming the file, not a trap.
    @Test func labelKeyAbove255IsAClearError() throws {
        let root = try folder.copy(fixturePath("decathlon/Task99_Mini"))
        let json = """
            {"name": "Mini", "labels": {"0": "background", "1": "organ", "2": "lesion", "300": "extra"},
             "training": [{"image": "./imagesTr/mini_000.nii.gz", "label": "./labelsTr/mini_000.nii.gz"}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/dataset.json"))
        let p = try coordinator(["datasets", "inspect", root], name: "inspect-300")
        expectClearError(p, mentioning: "dataset.json", "label 300")
    }

    /// A metrics file that cannot be written (a full disk) is a warning: the run completes,
    /// with its final checkpoint and hash.
    @Test func unwritableMetricsFileIsAWarning() throws {
        let p = try coordinator(["train", "--in-process", "--image-size", "16", "--base-channels", "4", "--shots", "2", "--query", "1",
                                 "--meta-batch", "2", "--outer-steps", "3", "--metrics", "/dev/full",
                                 "--checkpoint-dir", folder.path + "/full"], name: "metrics-full")
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stderr)")
        #expect(p.finalHash != nil)
        #expect(p.stderr.contains("metrics"), "no warning about the metrics file: \(p.stderr)")
        #expect(FileManager.default.fileExists(atPath: folder.path + "/full/final.safetensors"))
    }

    static let tiny = ["--image-size", "16", "--base-channels", "4", "--shots", "2", "--query", "1", "--meta-batch", "2", "--seed", "9"]

    /// Resume skips an unreadable newest checkpoint (saying so) and continues from the one
    /// before; the resumed run ends with the uninterrupted run's hash, and its metrics file has
    /// each step once.
    @Test func resumeFallsBackPastAnUnreadableCheckpointAndKeepsMetricsOnce() throws {
        let full = try coordinator(["train", "--in-process"] + Self.tiny + ["--outer-steps", "8", "--checkpoint-every", "0",
                                                                             "--checkpoint-dir", folder.path + "/full"], name: "full")
        #expect(full.waitExit() == 0, "\(full.stderr)")
        let dir = folder.path + "/resumed", metrics = dir + "/metrics.jsonl"
        let first = try coordinator(["train", "--in-process"] + Self.tiny + ["--outer-steps", "8", "--checkpoint-every", "2", "--metrics", metrics,
                                                                              "--checkpoint-dir", dir], name: "first")
        #expect(first.waitExit() == 0)
        // Damage the newest checkpoints: the final one's step-8 file, and the step-6 one.
        let files = Checkpoint.files(in: dir)
        #expect(files.count >= 2)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: files[0]))
        try FileManager.default.removeItem(atPath: dir + "/final.safetensors")
        let resumed = try coordinator(["train", "--in-process"] + Self.tiny + ["--outer-steps", "8", "--checkpoint-every", "2", "--metrics", metrics,
                                                                                "--checkpoint-dir", dir, "--resume"], name: "resumed")
        #expect(resumed.waitExit() == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("checkpoint unusable; falling back"), "\(resumed.stderr)")
        #expect(resumed.finalHash == full.finalHash)
        let steps = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)).step
        }
        #expect(steps == Array(1...8), "metrics steps \(steps)")
    }

    /// Training that diverges in process says so, checkpoints its last good state and exits
    /// non-zero.
    @Test func divergenceInProcessIsReported() throws {
        let p = try coordinator(["train", "--in-process"] + Self.tiny + ["--outer-steps", "30", "--meta-lr", "1e30", "--checkpoint-every", "0",
                                                                          "--checkpoint-dir", folder.path + "/diverged"], name: "diverged")
        expectClearError(p, mentioning: "training diverged; lower --meta-lr or use --clip-norm", "divergence")
        let checkpoint = try #require(Checkpoint.files(in: folder.path + "/diverged").first)
        #expect(try Checkpoint.read(path: checkpoint).meta.allSatisfy { $0.isFinite })
    }

    /// An unknown MEDMAML_GEMM or MEDMAML_CONV, or a MEDMAML_KEEP_STEPS that is no number of
    /// steps, is one clear line on both executables.
    @Test(arguments: [("MEDMAML_GEMM", "cuda"), ("MEDMAML_CONV", "fft"), ("MEDMAML_KEEP_STEPS", "all"),
                      ("MEDMAML_KEEP_STEPS", "-1")])
    func unknownNumericsChoiceIsAClearError(variable: String, value: String) throws {
        for exe in ["medmaml-coordinator", "medmaml-worker"] {
            let args = exe == "medmaml-worker" ? ["--connect", "tcp://127.0.0.1:9"] : ["train", "--in-process", "--outer-steps", "1"]
            let p = try ChildProcess(executable(exe), args, name: "\(variable)-\(exe)", folder: folder.path, environment: [variable: value])
            expectClearError(p, mentioning: variable, exe)
        }
    }

    /// A worker refuses plaintext to a coordinator that is not on this machine, unless told
    /// --insecure, as the coordinator does.
    @Test func workerRefusesRemotePlaintext() throws {
        let p = try ChildProcess(executable("medmaml-worker"), ["--connect", "tcp://192.0.2.1:5555"], name: "plaintext-worker", folder: folder.path)
        expectClearError(p, mentioning: "--insecure", "plaintext")
    }

    /// Local workers outlive no coordinator: killed with SIGKILL, it leaves no worker process
    /// and no key file behind.
    @Test func localWorkersDieWithTheirCoordinator() throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("medmaml-keys") }
        let c = try coordinator(["train"] + Self.tiny + ["--outer-steps", "10000", "--local-workers", "2", "--checkpoint-dir", folder.path + "/local"],
                                name: "local")
        #expect(c.waitFor("step 2/10000", timeout: 120), "\(c.stderr)")
        let workers = childProcesses(of: c.pid)
        #expect(workers.count == 2, "local workers: \(workers)")
        c.signal(SIGKILL)
        _ = c.waitExit(timeout: 10)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline && workers.contains(where: { kill($0, 0) == 0 }) { usleep(100_000) }
        #expect(!workers.contains { kill($0, 0) == 0 }, "local workers outlived their coordinator")
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("medmaml-keys") }
        #expect(after == before, "key folders left behind: \(after.subtracting(before))")
    }

    /// A coordinator whose local workers cannot start (no worker executable beside it) says
    /// so and exits, instead of waiting on its loopback endpoint, where nothing else can come.
    @Test func localWorkersThatCannotStartAreAClearError() throws {
        let bin = folder.path + "/lonely"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try copyExecutable(executable("medmaml-coordinator"), to: bin + "/medmaml-coordinator")
        let c = try ChildProcess(bin + "/medmaml-coordinator",
                                 ["train"] + Self.tiny + ["--outer-steps", "3", "--local-workers", "1", "--checkpoint-dir", folder.path + "/lonely-run"],
                                 name: "lonely", folder: folder.path)
        expectClearError(c, mentioning: "cannot start local workers: no worker executable at \(bin)/medmaml-worker", "no worker executable")
        #expect(c.stderr.contains("no worker can compute"), "\(c.stderr)")
    }

    /// A training run on two local workers heartbeating every 0.25 s, once it has taken two
    /// steps, and the workers' process ids.
    func trainingOnTwoLocalWorkers(steps: Int, name: String) throws -> (ChildProcess, [Int32]) {
        let c = try coordinator(["train"] + Self.tiny + ["--outer-steps", "\(steps)", "--local-workers", "2", "--heartbeat", "0.25",
                                                         "--checkpoint-dir", folder.path + "/" + name],
                                name: name)
        #expect(c.waitFor("step 2/\(steps)", timeout: 120), "\(c.stderr)")
        let workers = childProcesses(of: c.pid)
        #expect(workers.count == 2, "local workers: \(workers)")
        return (c, workers)
    }

    /// When every local worker has died, the coordinator exits with a clear error rather
    /// than waiting forever for workers that cannot come.
    @Test func losingEveryLocalWorkerIsAClearError() throws {
        let (c, workers) = try trainingOnTwoLocalWorkers(steps: 10000, name: "orphan")
        for w in workers { kill(w, SIGKILL) }
        expectClearError(c, mentioning: "every local worker exited (signal 9, signal 9)", "all local workers killed")
        // Nobody can come back to hear that the run is over: the coordinator does not wait
        // for them (it once waited the whole farewell period, saying the run was complete).
        #expect(!c.stderr.contains("lost their connection"), "\(c.stderr.suffix(2000))")
    }

    /// A local worker killed mid-run is never restarted, so the run, finished on the other one,
    /// ends without waiting for it to come back. It once waited the whole farewell period
    /// (25 s at the default heartbeat) for a worker that could not come.
    @Test func aLostLocalWorkerIsNotWaitedForAtTheEnd() throws {
        // Steps enough that the run outlasts the expiry (1.25 s) after the kill several times
        // over: 40 steps once ended first, and the loss was never declared.
        let (c, workers) = try trainingOnTwoLocalWorkers(steps: 300, name: "one-lost")
        if let one = workers.first { kill(one, SIGKILL) }
        #expect(c.waitExit(timeout: 120) == 0, "\(c.stderr.suffix(2000))")
        #expect(c.stderr.contains("declared dead"), "the lost worker was not noticed: \(c.stderr.suffix(2000))")
        #expect(!c.stderr.contains("lost their connection"), "\(c.stderr.suffix(2000))")
    }

    /// More workers asked for than the local workers, on the loopback endpoint where no other
    /// worker can connect, is a clear error at once rather than a wait that never ends.
    @Test func minimumWorkersAboveTheLocalWorkersIsAClearError() throws {
        let c = try coordinator(["train"] + Self.tiny + ["--outer-steps", "3", "--local-workers", "1", "--min-workers", "2",
                                                         "--checkpoint-dir", folder.path + "/too-few"],
                                name: "too-few")
        expectClearError(c, mentioning: "--min-workers 2", "more workers than local workers")
    }

    /// A study whose patterns would hold out a pseudo-task of its task-augmentation
    /// candidate says so before it starts, not when it reaches that candidate's calibration
    /// or training (minutes or hours into the study).
    @Test func aStudyRefusesHeldOutPseudoTasksBeforeItStarts() throws {
        let out = folder.path + "/pseudo-study"
        let c = try coordinator(["study", "--dataset", "synthetic-multi", "--out", out, "--image-size", "16", "--base-channels", "4",
                                 "--meta-batch", "2", "--budget", "1", "--in-process",
                                 "--candidates", "maml-second,maml-second+pseudo,transfer@0.001,scratch",
                                 "--validate", "*/ring/*", "--validate", "pseudo/*", "--hold-out", "*/paired/*"],
                                name: "pseudo-study")
        expectClearError(c, mentioning: "pseudo-tasks are meta-train tasks", "a study holding out pseudo-tasks")
        #expect(!c.stderr.contains("calibration"), "the study started before refusing: \(c.stderr)")
    }

    /// dataset.json may not send the reader outside the dataset folder.
    @Test func datasetPathsStayInsideTheFolder() throws {
        let root = try folder.copy(fixturePath("decathlon/Task99_Mini"), as: "escape")
        let json = """
            {"name": "Mini", "labels": {"0": "background", "1": "organ", "2": "lesion"},
             "training": [{"image": "../../etc/passwd", "label": "./labelsTr/mini_000.nii.gz"}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/dataset.json"))
        let p = try coordinator(["datasets", "inspect", root], name: "inspect-escape")
        expectClearError(p, mentioning: "leaves the dataset folder", "path escape")
    }

    /// A small gzip file that would inflate past the limit, and a NIfTI header with too many
    /// voxels, are clear errors without allocating what they ask for.
    @Test func decompressionBombsAndHugeVolumesAreRefused() throws {
        var header = [UInt8](repeating: 0, count: 352)
        func put16(_ at: Int, _ v: Int16) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { header[at + i] = b } } }
        func put32(_ at: Int, _ v: Int32) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { header[at + i] = b } } }
        func putF(_ at: Int, _ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { for (i, b) in $0.enumerated() { header[at + i] = b } } }
        put32(0, 348)
        put16(40, 3); put16(42, 4096); put16(44, 4096); put16(46, 4096); put16(48, 1)
        put16(70, 2); put16(72, 8)
        putF(108, 352); putF(112, 1)
        header[344...347] = [0x6E, 0x2B, 0x31, 0]
        let huge = try folder.write("huge.nii", Data(header))
        #expect(throws: DataError.self) { try NIfTIVolume.read(path: huge) }
        do { _ = try NIfTIVolume.read(path: huge) } catch { #expect("\(error)".contains("voxels"), "\(error)") }
        // 3 GB of zeros compress to about 3 MB: refused past the limit, not inflated. Behind a
        // header of zeros the file is refused as soon as its header is in.
        var zeros = Data(count: 64 << 20)
        let chunk = try Gzip.compress(zeros)
        zeros = Data()
        var bomb = Data()
        for _ in 0..<48 { bomb.append(chunk) }   // 48 members of 64 MB: 3 GB inflated
        let path = try folder.write("bomb.nii.gz", bomb)
        let error = try #require(throws: DataError.self) { try NIfTIVolume.read(path: path) }
        #expect("\(error)".contains("not a NIfTI-1 file"), "\(error)")
        // Behind a valid header of a 4D volume whose 200 volumes of 256^3 would take 3.3 GB,
        // the inflation stops at the limit (2 GiB), a chunk at a time, never held whole.
        put16(40, 4); put16(42, 256); put16(44, 256); put16(46, 256); put16(48, 200)
        let headed = try folder.write("headed-bomb.nii.gz", try Gzip.compress(Data(header)) + bomb)
        let limit = try #require(throws: DataError.self) { try NIfTIVolume.read(path: headed) }
        #expect("\(limit)".contains("exceeds"), "\(limit)")
    }
}
