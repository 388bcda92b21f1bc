import ArgumentParser
import Logging
import Training

/// The checkpoint `--resume` continues from: the newest one that reads and holds only finite
/// values. Unusable newer ones are skipped, saying why; if checkpoints exist but none is
/// usable, that is an error rather than a silent fresh start.
func resumeCheckpoint(in folder: String, logger: Logger) throws -> Checkpoint? {
    let usable = Checkpoint.newestUsable(in: folder) { path, reason in
        logger.warning("checkpoint unusable; falling back to the previous one", metadata: ["path": "\(path)", "reason": "\(reason)"])
    }
    if let usable {
        logger.notice("resuming run \(usable.checkpoint.run.runID) at step \(usable.checkpoint.step) from \(usable.path); its configuration replaces the command line's")
        return usable.checkpoint
    }
    if !Checkpoint.files(in: folder).isEmpty {
        throw ValidationError("no usable checkpoint in \(folder): every one is unreadable or holds non-finite values (see the warnings above)")
    }
    logger.notice("no checkpoint in \(folder): starting a new run")
    return nil
}
