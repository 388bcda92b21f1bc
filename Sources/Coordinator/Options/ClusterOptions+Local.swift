import ArgumentParser
import Logging

extension ClusterOptions {
    /// Local workers on loopback with throw-away keys (the demo's set-up).
    static func local(workers: Int, threads: Int, logLevel: Logger.Level) throws -> ClusterOptions {
        try ClusterOptions.parse(["--local-workers", "\(workers)", "--threads", "\(threads)", "--log-level", logLevel.rawValue]
                                 + (workers == 0 ? ["--in-process"] : []))
    }
}
