import Datasets
import Foundation
import Testing
import TestSupport
import Training

/// A local worker's lifetime is its coordinator's. Its one test waits several seconds, mostly
/// asleep, so it runs beside the others rather than in BrokenFileTests' queue.
@Suite struct LocalWorkerLifetimeTests {
    let folder = TemporaryFolder()

    /// A silent coordinator (stopped here; on a loaded machine, computing its numerics
    /// fingerprint before it welcomes anyone) keeps its local workers: they run without an
    /// idle timeout, so they wait for it as long as it lives, and the run goes on when it
    /// answers again. They used to get a 120 s idle timeout and leave, and the coordinator
    /// then stopped the run because every local worker had exited. The silence here (6 s at
    /// a heartbeat of 0.25 s, which the workers adopt: silence is noticed after 1.25 s and the
    /// reconnect delays double from 0.25 s) spans several reconnections; `WorkerSessionTests`
    /// holds a day of injected silence.
    @Test func localWorkersWaitForASilentCoordinator() throws {
        let metrics = folder.path + "/silent-metrics.jsonl"
        let args = ["train"] + BrokenFileTests.tiny
            + ["--outer-steps", "100000", "--local-workers", "1", "--heartbeat", "0.25", "--checkpoint-dir", folder.path + "/silent", "--metrics", metrics]
        let c = try ChildProcess(executable("medmaml-coordinator"), args, name: "silent", folder: folder.path)
        #expect(c.waitFor("step 2/100000", timeout: 120), "\(c.stderr)")
        let workers = childProcesses(of: c.pid)
        #expect(workers.count == 1, "local workers: \(workers)")
        for pid in workers {
            let arguments = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            #expect(arguments.contains("--exit-with-parent") && !arguments.contains("--idle-timeout"), "\(arguments)")
        }
        c.signal(SIGSTOP)
        sleep(6)
        #expect(workers.allSatisfy(isRunning), "a local worker left its silent coordinator")
        let before = lineCount(metrics)
        c.signal(SIGCONT)
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline && lineCount(metrics) < before + 3 { usleep(200_000) }
        #expect(lineCount(metrics) >= before + 3, "the run did not go on after the coordinator answered again: \(c.stderr.suffix(2000))")
        #expect(!c.stderr.contains("every local worker exited"), "\(c.stderr.suffix(2000))")
        c.signal(SIGTERM)
        _ = c.waitExit(timeout: 60)
    }
}

/// The process ids whose parent is `pid`.
func childProcesses(of pid: Int32) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { child in
        guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == pid
    }
}

/// Whether `pid` is a live process (neither gone nor a zombie waiting for its parent).
func isRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
}

/// The number of lines in a text file (0 if it cannot be read).
func lineCount(_ path: String) -> Int {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
}
