import Foundation
import Logging
import Transport
import Wire

/// Where and how a coordinator runs its tasks: in this process, on local worker processes, or
/// on workers that connect to a bound endpoint; with which security, verification and memory
/// bound. The command line's cluster options are parsed into this; `TrainingLauncher` acts
/// on it.
public struct ClusterSettings: Sendable, Equatable {
    /// The endpoint to bind; nil: `tcp://*:5555`, or loopback with an ephemeral port for
    /// local workers.
    public var bind: String?
    /// Ready workers to wait for before the first step.
    public var minimumWorkers = 1
    /// Worker processes started on this host (and stopped with it).
    public var localWorkers = 0
    /// Compute threads per local worker, or task threads in process.
    public var threads = 1
    /// Every task in this process, with no sockets.
    public var inProcess = false
    /// Tasks per worker thread sent ahead of need.
    public var prefetch = Wire.defaultPrefetch
    /// The coordinator's CURVE secret key file (turns encryption and authentication on).
    public var secretKey: String?
    /// Authorized worker public keys: a folder of .pub files, or a file with one per line.
    public var authorizedKeys: String?
    /// Accept plaintext on a non-loopback address.
    public var insecure = false
    /// Fraction of tasks computed twice and compared bit for bit.
    public var verify = 0.0
    /// Memory (MB) the socket may hold beyond the run's own before connections are dropped.
    public var memoryBudgetMB = Wire.defaultMemoryBudget >> 20
    /// Seconds between heartbeats; every liveness time scales with it, on the workers too.
    public var heartbeat = Wire.heartbeatInterval
    /// Log level handed to local workers.
    public var workerLogLevel: Logger.Level = .info

    public init() {}

    /// Local workers on loopback with throw-away keys, or (with 0 workers) every task in
    /// process on `threads` threads.
    public static func local(workers: Int, threads: Int, logLevel: Logger.Level) -> ClusterSettings {
        var s = ClusterSettings()
        s.localWorkers = workers
        s.threads = threads
        s.inProcess = workers == 0
        s.workerLogLevel = logLevel
        return s
    }

    public var endpoint: String { bind ?? (localWorkers > 0 ? "tcp://127.0.0.1:0" : "tcp://*:5555") }

    /// Compute threads the settings put to work on this host (for tuning and testing, which
    /// run here): the local workers' threads, or the in-process threads.
    public var hostThreads: Int { inProcess ? threads : max(localWorkers, 1) * threads }

    /// Checks every range and the security policy's rules that need no file, so a command can
    /// refuse impossible settings before it writes anything.
    public func validate() throws(LaunchError) {
        try validateRanges()
        if secretKey != nil && authorizedKeys == nil { throw .invalid("--secret-key needs --authorized-keys (the workers' public keys)") }
        if authorizedKeys != nil && secretKey == nil { throw .invalid("--authorized-keys needs --secret-key") }
        if !inProcess && secretKey == nil && localWorkers == 0 && !insecure && !Endpoint.isLoopback(endpoint) {
            throw Self.plaintextRefusal(endpoint)
        }
    }

    /// Checks every count and fraction (not the security policy, which depends on where the
    /// tasks run).
    public func validateRanges() throws(LaunchError) {
        guard (1...1024).contains(threads) else { throw .invalid("--threads must be in 1...1024") }
        guard (0...64).contains(localWorkers) else { throw .invalid("--local-workers must be in 0...64") }
        guard (0...64).contains(prefetch) else { throw .invalid("--prefetch must be between 0 and 64") }
        guard verify.isFinite, (0...1).contains(verify) else { throw .invalid("--verify takes a fraction in 0...1") }
        guard (16...1 << 20).contains(memoryBudgetMB) else { throw .invalid("--memory-budget takes 16...1048576 MB") }
        guard heartbeat.isFinite, Wire.heartbeatIntervalRange.contains(heartbeat) else {
            throw .invalid("--heartbeat takes \(Wire.heartbeatIntervalRange.lowerBound)...\(Wire.heartbeatIntervalRange.upperBound) seconds")
        }
        guard minimumWorkers >= 0 else { throw .invalid("--min-workers must not be negative") }
        guard localWorkers == 0 || bind != nil || minimumWorkers <= localWorkers else {
            throw .invalid("--min-workers \(minimumWorkers) can never be met: without --bind only the \(localWorkers) local worker(s) can connect (loopback); lower --min-workers or --bind an address for other workers")
        }
    }

    static func plaintextRefusal(_ endpoint: String) -> LaunchError {
        .invalid("refusing to bind \(endpoint) without encryption: give --secret-key and --authorized-keys (see `medmaml-coordinator keygen`), or --insecure to accept unencrypted, unauthenticated traffic")
    }

    /// The coordinator's security (nil: plaintext), applying the policy: CURVE with an
    /// allowlist when a secret key is given; throw-away keys for local workers (secure by
    /// default); plaintext on anything but loopback only when `insecure`.
    public func securityForCoordinator(logger: Logger) throws -> (config: SecurityConfig, local: LocalKeys?)? {
        try validate()
        if let secretKey, let authorizedKeys {
            let keys = try CurveKeyPair.read(secretFile: secretKey)
            var allowed = try CurveKeyPair.readAuthorized(authorizedKeys)
            var local: LocalKeys?
            if localWorkers > 0 {
                let l = LocalKeys(worker: try CurveKeyPair.generate(), coordinatorPublicKey: keys.publicKey)
                allowed.insert(l.worker.publicKey)
                local = l
            }
            logger.info("CURVE encryption on; \(allowed.count) authorized worker key(s)")
            return (SecurityConfig(keys: keys, authorizedKeys: allowed), local)
        }
        if localWorkers > 0 && !insecure {
            let keys = try CurveKeyPair.generate()
            let l = LocalKeys(worker: try CurveKeyPair.generate(), coordinatorPublicKey: keys.publicKey)
            logger.info("CURVE encryption on with throw-away keys for the local workers")
            return (SecurityConfig(keys: keys, authorizedKeys: [l.worker.publicKey]), l)
        }
        if !Endpoint.isLoopback(endpoint) {
            logger.warning("--insecure: training traffic on \(endpoint) is unencrypted and anyone who can reach it can join the run")
        }
        return nil
    }
}

/// Settings a launch cannot work with, said as the flag a user would change.
public enum LaunchError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let why): why
        }
    }
}
