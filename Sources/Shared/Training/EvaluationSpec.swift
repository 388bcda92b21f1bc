/// Meta-test settings: how held-out tasks are adapted and scored.
public struct EvaluationSpec: Codable, Hashable, Sendable, Equatable {
    public var seed: UInt64 = 1_000_003
    public var support = 5
    public var query = 5
    /// Inner steps when adapting (default: the training inner steps).
    public var steps: Int? = nil
    /// Sampled instances per held-out task.
    public var perTask = 4
    /// Evaluate every this many outer steps (0: never during training).
    public var every = 0
    public init() {}
}
