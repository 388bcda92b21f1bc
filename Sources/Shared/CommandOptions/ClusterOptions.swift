import ArgumentParser
import Cluster
import Logging
import Wire

/// Where and how the work runs: flags shared by every command that trains.
public struct ClusterOptions: ParsableArguments {
    public init() {}
    @Option(help: "Coordinator endpoint to bind (default tcp://*:5555; loopback with an ephemeral port for --local-workers).")
    public var bind: String?
    @Option(help: "Wait for this many workers before the first step.") public var minWorkers = 1
    @Option(help: "Start this many worker processes on this host (stopped on exit); study and demo start 2 unless --in-process or --bind is given.")
    public var localWorkers: Int?
    @Option(help: "Compute threads per local worker, or task threads with --in-process.") public var threads = 1
    @Flag(help: "Run every task in this process, with no sockets.") public var inProcess = false
    @Option(help: "Tasks per worker thread sent ahead of need, to hide network latency (0: none).") public var prefetch = Wire.defaultPrefetch
    @Option(help: "CURVE secret key file of the coordinator (turns encryption and authentication on).") public var secretKey: String?
    @Option(help: "Authorized worker public keys: a folder of .pub files or a file with one key per line.") public var authorizedKeys: String?
    @Flag(help: "Allow unencrypted, unauthenticated traffic on a non-loopback address.") public var insecure = false
    @Option(help: "Fraction (0...1) of tasks computed again by a second worker and compared bit for bit; a disagreement is settled by a third computation and the wrong worker quarantined.")
    public var verify = 0.0
    @Option(help: "Seconds between heartbeats with the workers, which adopt it; a worker silent for 5 of them is declared dead, and every other liveness time scales with it. Lower it to notice failures sooner on a fast network.")
    public var heartbeat = Wire.heartbeatInterval
    @Option(help: "Memory (MB) the coordinator's socket may hold beyond the run's own use before every connection is dropped and workers re-register.")
    public var memoryBudget = Wire.defaultMemoryBudget >> 20
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (for example 0.0.0.0:9464).") public var metricsAddress: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") public var logLevel: Logger.Level = .info

    /// The settings, with `defaultLocalWorkers` local workers when none of --local-workers,
    /// --in-process and --bind says where tasks run. Checked when the arguments are parsed
    /// (run files are expanded into them first), so a command refuses impossible settings
    /// before any work.
    public func settings(defaultLocalWorkers: Int = 0) -> ClusterSettings {
        var s = ClusterSettings()
        s.bind = bind
        s.minimumWorkers = minWorkers
        s.localWorkers = localWorkers ?? (inProcess || bind != nil ? 0 : defaultLocalWorkers)
        s.threads = threads
        s.inProcess = inProcess
        s.prefetch = prefetch
        s.secretKey = secretKey
        s.authorizedKeys = authorizedKeys
        s.insecure = insecure
        s.verify = verify
        s.memoryBudgetMB = memoryBudget
        s.heartbeat = heartbeat
        s.workerLogLevel = logLevel
        return s
    }

    public func validate() throws {
        do { try settings().validateRanges() } catch { throw ValidationError("\(error)") }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
