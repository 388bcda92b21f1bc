import Evaluation
import MetaLearning

/// One line of `metrics.jsonl`: a step's report, its throughput, and the held-out Dice when
/// an evaluation followed the step.
public struct MetricsRecord: Codable, Sendable, Equatable {
    /// Steps completed (the report's step + 1).
    public var step: Int
    public var metaLoss: Double
    public var queryDice: Double
    public var supportLoss: Double
    public var gradientNorm: Double
    public var order: MetaOrder
    public var seconds: Double
    public var tasksPerSecond: Double
    public var workers: Int
    public var heldoutDice: Double?
    public var heldoutDiceCI95: Double?

    enum CodingKeys: String, CodingKey {
        case step, order, seconds, workers
        case metaLoss = "meta_loss", queryDice = "query_dice", supportLoss = "support_loss"
        case gradientNorm = "gradient_norm", tasksPerSecond = "tasks_per_second"
        case heldoutDice = "heldout_dice", heldoutDiceCI95 = "heldout_dice_ci95"
    }

    public init(_ r: StepReport, metaBatch: Int, workers: Int, heldOut: MeanCI? = nil) {
        step = r.step + 1
        metaLoss = Double(r.metaLoss)
        queryDice = Double(r.queryDice)
        supportLoss = Double(r.supportLoss)
        gradientNorm = Double(r.gradientNorm)
        order = r.order
        seconds = r.seconds
        tasksPerSecond = Double(metaBatch) / max(r.seconds, 1e-9)
        self.workers = workers
        heldoutDice = heldOut?.mean
        heldoutDiceCI95 = heldOut?.halfWidth
    }
}
