import Logging

/// Logging to stderr, set up once per process (only executables set up logging); the level
/// of the first call applies to every handler.
nonisolated(unsafe) private var bootstrapped = false

/// Sets up logging to stderr at `level` (the first time) and returns the coordinator's logger.
func makeLogger(_ level: Logger.Level) -> Logger {
    if !bootstrapped {
        bootstrapped = true
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
    var logger = Logger(label: "medmaml.coordinator")
    logger.logLevel = level
    return logger
}
