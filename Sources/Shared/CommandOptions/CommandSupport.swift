import ArgumentParser
import Core
import Foundation
import Logging
import Service

/// Logging to stderr, set up once per process (only executables set up logging); the level
/// of the first call applies to every handler.
nonisolated(unsafe) private var bootstrapped = false

/// Sets up logging to stderr at `level` (the first time) and returns a logger with `label`.
public func makeLogger(_ level: Logger.Level, label: String = "medmaml.coordinator") -> Logger {
    if !bootstrapped {
        bootstrapped = true
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}

/// A line on stderr.
public func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// How every command ends when SIGINT or SIGTERM stopped it: "stopped by signal N; <how to
/// continue>" on stderr, and exit status 128 + N.
public func stoppedBySignal(_ signal: Int32, _ howToContinue: String) -> ExitCode {
    note("stopped by signal \(signal); \(howToContinue)")
    return ExitCode(128 + signal)
}

/// The process's Prometheus endpoint, started by the first command that asks for one.
nonisolated(unsafe) private var metricsEndpoint: MetricsEndpoint?

public func startMetrics(_ address: String?, logger: Logger) throws {
    guard let address, metricsEndpoint == nil else { return }
    do { metricsEndpoint = try MetricsEndpoint(address: address, logger: logger) } catch { throw ValidationError("\(error)") }
}

/// Runs `body`; when it throws (training diverged, no worker can come), lets Prometheus take
/// one last scrape before the error ends the process, so the run's last values (its
/// `medmaml_training_diverged` among them) reach the alerts. See
/// `MetricsEndpoint.awaitNextScrape`.
public func withFinalScrapeOnFailure<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        if let endpoint = metricsEndpoint, endpoint.isWatched {
            note("the run failed; waiting for Prometheus to scrape its last metrics")
            endpoint.awaitNextScrape()
        }
        throw error
    }
}

/// Writes the effective configuration (`RunFile.effective`) as `folder/run.yaml`.
public func writeRunFile(into folder: String) throws {
    guard let text = RunFile.effective else { return }
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try AtomicFile.write(Data(text.utf8), to: folder + "/run.yaml")
}
