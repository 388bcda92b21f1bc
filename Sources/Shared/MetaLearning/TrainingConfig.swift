/// Settings of a meta-training run beyond the inner loop.
public struct TrainingConfig: Codable, Hashable, Sendable {
    public var meta: MetaConfig
    public var optimizer: Adam
    /// Tasks per outer step.
    public var metaBatch = 8
    /// Outer steps.
    public var steps = 1000
    public var seed: UInt64 = 0
    /// Initial-parameter seed (defaults to `seed`).
    public var initSeed: UInt64? = nil

    public init(meta: MetaConfig = MetaConfig(), optimizer: Adam = Adam(learningRate: 1e-3)) {
        self.meta = meta
        self.optimizer = optimizer
    }

    public func validate() throws(MetaConfigError) {
        try meta.validate()
        guard (1...4096).contains(metaBatch) else { throw .invalid("meta-batch must be in 1...4096") }
        guard steps >= 0 else { throw .invalid("steps must be non-negative") }
        guard optimizer.learningRate.isFinite, optimizer.learningRate > 0 else {
            throw .invalid("the meta learning rate must be positive")
        }
    }
}
