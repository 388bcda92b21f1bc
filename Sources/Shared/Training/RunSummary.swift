import MetaLearning

/// How a run ended.
public struct RunSummary: Sendable {
    public var finalParameters: [Float]
    public var finalHash: String
    public var steps: Int
    public var stoppedBySignal: Int32?
    public var evaluations: [HeldOutScore]
    public var reports: [StepReport]
}
