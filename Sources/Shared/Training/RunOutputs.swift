/// What a run writes besides its checkpoints, and how often.
public struct RunOutputs: Sendable {
    public var checkpointFolder: String
    /// Checkpoint every this many outer steps (0: only on signals and at the end).
    public var checkpointEvery = 0
    /// Checkpoints kept (older ones are deleted).
    public var keepCheckpoints = 3
    /// One JSON object per step, appended.
    public var metricsPath: String?
    /// The effective configuration of the command that started the run (YAML, as
    /// `--print-config` prints it): stored in every checkpoint and in final.safetensors.
    public var runFile: String?
    public init(checkpointFolder: String) { self.checkpointFolder = checkpointFolder }
}
