import Foundation
import Logging
import Transport

/// Throw-away CURVE keys for worker processes started by this coordinator, held in memory.
public struct LocalKeys: Sendable {
    public let worker: CurveKeyPair
    public let coordinatorPublicKey: String

    public init(worker: CurveKeyPair, coordinatorPublicKey: String) {
        self.worker = worker
        self.coordinatorPublicKey = coordinatorPublicKey
    }

    /// What a local worker reads on stdin (`--keys-from-stdin`): its key pair and the
    /// coordinator's public key.
    var pipeText: String { worker.secretFileContents + "coordinator-key = \"\(coordinatorPublicKey)\"\n" }
}

/// Worker processes on this host, started once the coordinator's socket is bound and
/// stopped (SIGTERM, then SIGKILL) when the coordinator exits. A worker also exits by itself
/// when this process is gone (`--exit-with-parent`), so even a coordinator killed with SIGKILL
/// leaves none behind; their keys travel on a pipe, so none are left on disk either.
public final class LocalWorkers: @unchecked Sendable {
    let count: Int
    let threads: Int
    let keys: LocalKeys?
    let logger: Logger
    let logLevel: Logger.Level
    var processes: [Process] = []
    /// Why the processes could not be started, if they could not.
    private(set) var startFailure: String?

    public init(count: Int, threads: Int, keys: LocalKeys?, logLevel: Logger.Level, logger: Logger) throws(LaunchError) {
        self.logLevel = logLevel
        guard threads >= 1 else { throw .invalid("--threads must be at least 1") }
        self.count = count
        self.threads = threads
        self.keys = keys
        self.logger = logger
    }

    /// `medmaml-worker` beside this program. When the installed executables are replaced
    /// during a run (a rebuild, an upgrade), the kernel names the running file
    /// "<path> (deleted)"; the folder is the same, and so is the worker's place in it.
    public static var workerExecutable: String {
        var me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if me.hasSuffix(" (deleted)") { me.removeLast(" (deleted)".count) }
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("medmaml-worker").path
    }

    public func start(endpoint: String) throws {
        let connect = endpoint.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:")
            .replacingOccurrences(of: "tcp://*:", with: "tcp://127.0.0.1:")
        guard FileManager.default.isExecutableFile(atPath: Self.workerExecutable) else {
            throw LaunchError.invalid("no worker executable at \(Self.workerExecutable) (medmaml-worker must sit beside medmaml-coordinator)")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["OMP_NUM_THREADS"] = "1"
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.workerExecutable)
            // No --idle-timeout: a local worker waits for its coordinator as long as that lives
            // (it may be silent for minutes, computing its numerics fingerprint before it
            // welcomes anyone), and leaves when it is gone.
            var args = ["--connect", connect, "--threads", "\(threads)", "--name", "local-\(i)",
                        "--log-level", logLevel.rawValue, "--exit-with-parent", "\(getpid())"]
            let input = Pipe()
            if keys != nil { args.append("--keys-from-stdin") }
            p.arguments = args
            p.environment = environment
            p.standardInput = input
            try p.run()
            if let keys { input.fileHandleForWriting.write(Data(keys.pipeText.utf8)) }
            try? input.fileHandleForWriting.close()
            processes.append(p)
        }
        logger.info("started \(count) local worker(s) with \(threads) thread(s) each on \(connect)")
    }

    /// Records a failure to start the processes (for `whyNoneCanCome`).
    public func failedToStart(_ error: Error) {
        startFailure = "cannot start local workers: \(error)"
    }

    /// Why none of these workers can serve the run any more: they could not be started, or
    /// every one has exited (refused by the coordinator, crashed or killed; their own
    /// messages say which). Nil while any is running.
    public var whyNoneCanCome: String? {
        if let startFailure { return startFailure }
        guard !processes.isEmpty, processes.allSatisfy({ !$0.isRunning }) else { return nil }
        let codes = processes.map { "\($0.terminationReason == .uncaughtSignal ? "signal " : "exit ")\($0.terminationStatus)" }
        return "every local worker exited (\(codes.joined(separator: ", "))); their messages are above"
    }

    public func stop() {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for p in processes {
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        processes = []
    }
}
