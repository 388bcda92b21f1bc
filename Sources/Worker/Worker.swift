import ArgumentParser
import Cluster
import CommandOptions
import Core
import Engine
import Foundation
import Logging
import Service
import Transport

@main
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmaml-worker",
        abstract: "A MedMAML worker: computes meta-learning tasks for a coordinator.",
        discussion: """
            Needs only the coordinator's address: the run's configuration arrives when it \
            registers. Exits 0 when the coordinator shuts it down or after --idle-timeout, 2 when \
            refused (other data, other numerics, another run, not authorized), 1 on errors.
            """)

    @Option(help: "Coordinator endpoint, for example tcp://host:5555.") var connect: String
    @Option(help: "Compute threads (one task each at a time).") var threads = 1
    @Option(help: "Name shown in the coordinator's logs (default host-pid).") var name: String?
    @Option(help: "Folder holding file datasets by name (default: the coordinator's path).") var dataRoot: String?
    @Option(help: "Exit after this many seconds without a coordinator (0: never).") var idleTimeout: Double = 0
    @Option(help: "This worker's CURVE secret key file (with --coordinator-key).") var secretKey: String?
    @Option(help: "The coordinator's CURVE public key file.") var coordinatorKey: String?
    @Flag(help: "Read this worker's key pair and the coordinator's public key from stdin (as the coordinator's --local-workers hand them over).")
    var keysFromStdin = false
    @Flag(help: "Allow unencrypted, unauthenticated traffic to a coordinator that is not on this machine.") var insecure = false
    @Option(help: "Exit when the process with this id is no longer this worker's parent.") var exitWithParent: Int32?
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (for example 0.0.0.0:9465).") var metricsAddress: String?
    @Option(help: ArgumentHelp("Inner steps whose passes this worker keeps (default: the run's setting).",
                               discussion: "Memory for speed on this machine; results are the same bits whatever it keeps."))
    var keepSteps: Int?
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    func run() throws {
        do { try BLAS.checkEnvironment() } catch { throw ValidationError("\(error)") }
        guard (1...1024).contains(threads) else { throw ValidationError("--threads must be in 1...1024") }
        guard connect.hasPrefix("tcp://") || connect.hasPrefix("ipc://") else {
            throw ValidationError("--connect takes tcp://HOST:PORT (or ipc://PATH)")
        }
        let logger = makeLogger(logLevel, label: "medmaml.worker")
        StopSignal.install()
        var options = WorkerNode.Options(endpoint: connect, threads: threads,
                                         name: name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())")
        options.dataRoot = dataRoot
        options.idleTimeout = idleTimeout
        options.parentProcess = exitWithParent
        // MEDMAML_KEEP_STEPS is how set-ups from before the flag chose it.
        options.keptSteps = keepSteps ?? NumericsSettings.fromEnvironment.keptSteps
        if let kept = options.keptSteps, !(0...ActivationMemory.maximumKeptSteps).contains(kept) {
            throw ValidationError("--keep-steps takes 0...\(ActivationMemory.maximumKeptSteps)")
        }
        switch (secretKey, coordinatorKey, keysFromStdin) {
        case (let s?, let c?, false):
            options.security = SecurityConfig(keys: try CurveKeyPair.read(secretFile: s), serverKey: try CurveKeyPair.readPublic(c))
        case (nil, nil, true):
            let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile().prefix(1 << 16), as: UTF8.self)
            guard let server = CurveKeyPair.key(named: "coordinator-key", in: text) else {
                throw ValidationError("--keys-from-stdin: no coordinator-key = \"<40 Z85 characters>\" line on stdin")
            }
            options.security = SecurityConfig(keys: try CurveKeyPair.parse(secretText: text, source: "stdin"), serverKey: server)
        case (nil, nil, false):
            // The same policy as the coordinator's: plaintext only on this machine, unless asked for.
            guard Endpoint.isLoopback(connect) || insecure else {
                throw ValidationError("refusing to connect to \(connect) without encryption: give --secret-key and --coordinator-key, or --insecure to accept unencrypted, unauthenticated traffic (anyone on the path could read the model and send this worker tasks)")
            }
            if !Endpoint.isLoopback(connect) {
                logger.warning("--insecure: traffic with \(connect) is unencrypted, and this worker obeys whoever answers there")
            }
        default:
            throw ValidationError("--secret-key and --coordinator-key go together (or use --keys-from-stdin alone)")
        }
        var endpoint: MetricsEndpoint?
        if let metricsAddress {
            do { endpoint = try MetricsEndpoint(address: metricsAddress, logger: logger) } catch { throw ValidationError("\(error)") }
        }
        defer { endpoint?.stop() }
        switch WorkerNode(options: options, logger: logger).run() {
        case .shutdown(let reason):
            logger.info("shut down by the coordinator: \(reason)")
        case .idle:
            logger.info("idle for \(idleTimeout) s; exiting")
        case .refused(let reason):
            logger.error("refused by the coordinator: \(reason)")
            throw ExitCode(2)
        case .signal(let sig):
            throw ExitCode(128 + sig)
        case .failed(let reason):
            logger.error("\(reason)")
            throw ExitCode(1)
        case .restart(let numerics):
            // The engine fixes its numerics at its first computation: start this program
            // again with the run's, and it registers as a new worker.
            guard !keysFromStdin else {
                logger.error("the run's numerics (\(numerics)) differ from those this worker computes with, and a worker whose keys came on stdin cannot start itself again; start it anew")
                throw ExitCode(1)
            }
            logger.notice("starting again with the run's numerics", metadata: ["numerics": "\(numerics)"])
            endpoint?.stop()
            restart(with: numerics)
        }
    }
}

/// Replaces this process with the same program and arguments, the environment holding
/// `numerics` (what the engine reads at its first computation). Returns only if exec fails.
func restart(with numerics: NumericsSettings) -> Never {
    var environment = ProcessInfo.processInfo.environment
    for (name, value) in numerics.environmentVariables { environment[name] = value }
    for name in numerics.unsetVariables { environment[name] = nil }
    let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let argv = CommandLine.arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    execve(path, argv, envp)
    FileHandle.standardError.write(Data("cannot start \(path) again: \(String(cString: strerror(errno)))\n".utf8))
    exit(1)
}
