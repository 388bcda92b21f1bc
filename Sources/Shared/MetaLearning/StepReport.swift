/// What one outer step did.
public struct StepReport: Sendable, Codable {
    public var step: Int
    /// Mean meta-objective over the meta-batch.
    public var metaLoss: Float
    /// Mean query Dice after adaptation over the meta-batch.
    public var queryDice: Float
    /// Mean support loss before adaptation.
    public var supportLoss: Float
    /// Norm of the averaged meta-gradient before clipping.
    public var gradientNorm: Float
    public var order: MetaOrder
    public var seconds: Double
}
