import MetaLearning

/// A computed job: its statistics, the meta-gradient (meta-gradient jobs only), how long it
/// took and who computed it.
public struct TaskOutcome: Sendable {
    public var stats: TaskStatistics
    public var gradient: [Float]?
    public var seconds: Double
    public var worker: String
    public init(stats: TaskStatistics, gradient: [Float]?, seconds: Double, worker: String) {
        self.stats = stats
        self.gradient = gradient
        self.seconds = seconds
        self.worker = worker
    }
}
