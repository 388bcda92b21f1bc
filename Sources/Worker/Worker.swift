import ArgumentParser
import Cluster
import Core
import Foundation
import Logging
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
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    func run() throws {
        guard (1...1024).contains(threads) else { throw ValidationError("--threads must be in 1...1024") }
        guard connect.hasPrefix("tcp://") || connect.hasPrefix("ipc://") else {
            throw ValidationError("--connect takes tcp://HOST:PORT (or ipc://PATH)")
        }
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "medmaml.worker")
        logger.logLevel = level
        StopSignal.install()
        var options = WorkerNode.Options(endpoint: connect, threads: threads,
                                         name: name ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())")
        options.dataRoot = dataRoot
        options.idleTimeout = idleTimeout
        switch (secretKey, coordinatorKey) {
        case (let s?, let c?):
            options.security = SecurityConfig(keys: try CurveKeyPair.read(secretFile: s), serverKey: try CurveKeyPair.readPublic(c))
        case (nil, nil):
            break
        default:
            throw ValidationError("--secret-key and --coordinator-key go together")
        }
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
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
