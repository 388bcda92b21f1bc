import ArgumentParser

/// Where a training command writes, and whether it continues what is there.
public struct TrainingOutputOptions: ParsableArguments {
    public init() {}
    @Option(help: "Folder for checkpoints, final.safetensors and run.yaml (default: checkpoints; pretrain's: pretrain).")
    public var checkpointDir: String?
    @Option(help: "Checkpoint every N outer steps (0: only on SIGINT/SIGTERM and at the end).") public var checkpointEvery = 50
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") public var resume = false
    @Option(help: "Append one JSON object per step to this file.") public var metrics: String?

    public func validate() throws {
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must not be negative") }
    }
}
