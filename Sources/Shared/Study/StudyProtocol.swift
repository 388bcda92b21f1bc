/// How much a study trains and how much it measures: the same for every candidate.
public struct StudyProtocol: Sendable, Equatable {
    /// Core-seconds of training per candidate.
    public var budget: Double
    /// Fractions of the budget at which every candidate is snapshotted.
    public var fractions: [Double]
    /// Shots of the Dice-against-K curve.
    public var shots: [Int]
    /// Shots of the main comparison.
    public var mainShots = 5
    public var validationPerTask: Int
    public var testPerTask: Int
    /// Per-step costs to use instead of measuring them.
    public var costs: [String: Double]?

    public init(budget: Double, fractions: [Double], shots: [Int], mainShots: Int = 5, validationPerTask: Int, testPerTask: Int,
                costs: [String: Double]? = nil) {
        self.budget = budget
        self.fractions = fractions
        self.shots = shots
        self.mainShots = mainShots
        self.validationPerTask = validationPerTask
        self.testPerTask = testPerTask
        self.costs = costs
    }
}
