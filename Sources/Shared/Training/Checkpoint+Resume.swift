import Logging

extension Checkpoint {
    /// The checkpoint `--resume` continues from: the newest one in `folder` that reads and
    /// holds only finite values. Unusable newer ones are skipped, saying why; if checkpoints
    /// exist but none is usable, that is an error rather than a silent fresh start. Nil when
    /// the folder holds none.
    public static func resumable(in folder: String, logger: Logger) throws(CheckpointError) -> Checkpoint? {
        let usable = newestUsable(in: folder) { path, reason in
            logger.warning("checkpoint unusable; falling back to the previous one", metadata: ["path": "\(path)", "reason": "\(reason)"])
        }
        if let usable {
            logger.notice("resuming run \(usable.checkpoint.run.runID) at step \(usable.checkpoint.step) from \(usable.path); its configuration replaces the command line's")
            return usable.checkpoint
        }
        if !files(in: folder).isEmpty {
            throw .noneUsable(folder: folder)
        }
        logger.notice("no checkpoint in \(folder): starting a new run")
        return nil
    }
}

/// Why no checkpoint can be resumed.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case noneUsable(folder: String)

    public var description: String {
        switch self {
        case .noneUsable(let folder):
            "no usable checkpoint in \(folder): every one is unreadable or holds non-finite values (see the warnings above)"
        }
    }
}
