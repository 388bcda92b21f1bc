import Evaluation

/// A held-out evaluation during training: overall and per-task Dice.
public struct HeldOutScore: Sendable, Codable {
    public var step: Int
    public var dice: MeanCI
    public var perTask: [String: MeanCI]
}
