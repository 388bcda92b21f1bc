/// The statistics of one task's meta-gradient (or, for an evaluation, of its adaptation).
public struct TaskStatistics: Sendable, Equatable, Codable {
    /// Query loss at the adapted parameters theta_k.
    public var queryLoss: Float
    /// Mean hard Dice on the query images at theta_k.
    public var queryDice: Float
    /// Support loss before adaptation, at theta (0 for evaluations).
    public var supportLoss: Float
    /// The meta-objective sum_j w_j L_q(theta_j) (equal to `queryLoss` without the multi-step
    /// loss; 0 for evaluations).
    public var objective: Float

    public init(queryLoss: Float, queryDice: Float, supportLoss: Float, objective: Float) {
        self.queryLoss = queryLoss
        self.queryDice = queryDice
        self.supportLoss = supportLoss
        self.objective = objective
    }
}
