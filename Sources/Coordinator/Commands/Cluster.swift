import ArgumentParser
import Foundation
import Logging
import Shared

/// Throw-away CURVE keys for worker processes started by this coordinator.
struct LocalKeys {
    let folder: String
    let workerKey: String
    let coordinatorPublicKey: String
}

extension ClusterOptions {
    /// The coordinator's security from the flags (nil: plaintext), applying the policy:
    /// CURVE with an allowlist when --secret-key is given; throw-away keys for --local-workers
    /// (secure by default); plaintext on anything but loopback only with --insecure.
    func securityForCoordinator(logger: Logger) throws -> (config: SecurityConfig, local: LocalKeys?)? {
        let loopback = Self.isLoopback(endpoint)
        if let secretKey {
            guard let authorizedKeys else { throw ValidationError("--secret-key needs --authorized-keys (the workers' public keys)") }
            let keys = try CurveKeyPair.read(secretFile: secretKey)
            var allowed = try CurveKeyPair.readAuthorized(authorizedKeys)
            var local: LocalKeys?
            if localWorkers > 0 {
                let l = try Self.makeLocalKeys(coordinator: keys)
                allowed.insert(try CurveKeyPair.readPublic(l.workerKey.replacingOccurrences(of: ".key", with: ".pub")))
                local = l
            }
            logger.info("CURVE encryption on; \(allowed.count) authorized worker key(s)")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), local)
        }
        if authorizedKeys != nil { throw ValidationError("--authorized-keys needs --secret-key") }
        if localWorkers > 0 && !insecure {
            let keys = try CurveKeyPair.generate()
            let l = try Self.makeLocalKeys(coordinator: keys)
            let allowed: Set<String> = [try CurveKeyPair.readPublic(l.workerKey.replacingOccurrences(of: ".key", with: ".pub"))]
            logger.info("CURVE encryption on with throw-away keys for the local workers")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), l)
        }
        if !loopback && !insecure {
            throw ValidationError("refusing to bind \(endpoint) without encryption: give --secret-key and --authorized-keys (see `medmaml-coordinator keygen`), or --insecure to accept unencrypted, unauthenticated traffic")
        }
        if !loopback {
            logger.warning("--insecure: training traffic on \(endpoint) is unencrypted and anyone who can reach it can join the run")
        }
        return nil
    }

    static func isLoopback(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let rest = endpoint.dropFirst(6)
        let host = rest.hasPrefix("[") ? String(rest.dropFirst().prefix { $0 != "]" }) : String(rest.prefix { $0 != ":" })
        return ["127.0.0.1", "localhost", "::1"].contains(host) || host.hasPrefix("127.")
    }

    /// A private folder with a worker key pair and the coordinator's public key.
    static func makeLocalKeys(coordinator: CurveKeyPair) throws -> LocalKeys {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("medmaml-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try CurveKeyPair.generate().write(base: folder + "/worker")
        FileManager.default.createFile(atPath: folder + "/coordinator.pub",
                                       contents: Data("public-key = \"\(coordinator.publicKey)\"\n".utf8))
        return LocalKeys(folder: folder, workerKey: folder + "/worker.key", coordinatorPublicKey: folder + "/coordinator.pub")
    }
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

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public), Z85 text.")
    @Option(help: "Path and base name, for example keys/coordinator.") var out: String

    func run() throws {
        let folder = URL(fileURLWithPath: out).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let pair = try CurveKeyPair.generate()
        try pair.write(base: out)
        print("wrote \(out).key (secret, mode 0600) and \(out).pub")
        print("public-key \(pair.publicKey)")
    }
}
