import ArgumentParser
import Foundation
import Logging

/// Throw-away CURVE keys for worker processes started by this coordinator.
struct LocalKeys {
    let folder: String
    let workerKey: String
    let coordinatorPublicKey: String
}

/// Worker processes on this host, started once the coordinator's socket is bound and
/// stopped (SIGTERM, then SIGKILL) when the coordinator exits.
final class LocalWorkers: @unchecked Sendable {
    let count: Int
    let threads: Int
    let keys: LocalKeys?
    let logger: Logger
    let logLevel: Logger.Level
    var processes: [Process] = []

    init(count: Int, threads: Int, keys: LocalKeys?, logger: Logger) throws {
        self.logLevel = logger.logLevel
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        self.count = count
        self.threads = threads
        self.keys = keys
        self.logger = logger
    }

    static var workerExecutable: String {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return me.deletingLastPathComponent().appendingPathComponent("medmaml-worker").path
    }

    func start(endpoint: String) throws {
        let connect = endpoint.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:")
            .replacingOccurrences(of: "tcp://*:", with: "tcp://127.0.0.1:")
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["OMP_NUM_THREADS"] = "1"
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.workerExecutable)
            var args = ["--connect", connect, "--threads", "\(threads)", "--name", "local-\(i)", "--idle-timeout", "120",
                        "--log-level", logLevel.rawValue]
            if let keys { args += ["--secret-key", keys.workerKey, "--coordinator-key", keys.coordinatorPublicKey] }
            p.arguments = args
            p.environment = environment
            try p.run()
            processes.append(p)
        }
        logger.info("started \(count) local worker(s) with \(threads) thread(s) each on \(connect)")
    }

    func stop() {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for p in processes {
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        processes = []
        if let keys { try? FileManager.default.removeItem(atPath: keys.folder) }
    }
}
