import RealModule

/// Adam (Kingma & Ba, 2015) as a pure per-parameter update, with PyTorch's conventions:
///   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2,
///   theta -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
/// Optional global-norm gradient clipping and a cosine learning-rate schedule.
public struct Adam: Codable, Hashable, Sendable {
    public var learningRate: Float = 1e-3
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Clip the gradient to this global L2 norm first (nil: no clipping).
    public var clipNorm: Float? = nil
    /// Cosine decay from `learningRate` to `minimumLearningRate` over this many steps (nil: constant).
    public var cosineSteps: Int? = nil
    public var minimumLearningRate: Float = 0

    public init(learningRate: Float = 1e-3) { self.learningRate = learningRate }

    /// Moment estimates and the number of updates applied.
    public struct State: Codable, Hashable, Sendable {
        public var m: [Float]
        public var v: [Float]
        public var step: Int
        public init(count: Int) {
            m = Array(repeating: 0, count: count)
            v = Array(repeating: 0, count: count)
            step = 0
        }
    }

    /// The learning rate for update number `t` (1-based).
    public func learningRate(at t: Int) -> Float {
        guard let total = cosineSteps, total > 0 else { return learningRate }
        let progress = Double(min(max(t - 1, 0), total)) / Double(total)
        let lo = Double(minimumLearningRate), hi = Double(learningRate)
        return Float(lo + 0.5 * (hi - lo) * (1 + Double.cos(Double.pi * progress)))
    }

    /// Applies one update to `parameters` with `gradient` (clipped first if configured).
    /// Returns the gradient norm before clipping.
    @discardableResult
    public func update(parameters: inout [Float], gradient: [Float], state: inout State) -> Float {
        precondition(parameters.count == gradient.count && state.m.count == gradient.count, "size mismatch")
        var squared: Double = 0
        for g in gradient { squared += Double(g) * Double(g) }
        let norm = Float(squared.squareRoot())
        var scale: Float = 1
        if let clip = clipNorm, norm > clip, norm > 0 { scale = clip / norm }
        state.step += 1
        let t = state.step
        let lr = learningRate(at: t)
        let c1 = 1 - Float.pow(beta1, t), c2 = 1 - Float.pow(beta2, t)
        for i in parameters.indices {
            let g = gradient[i] * scale
            state.m[i] = beta1 * state.m[i] + (1 - beta1) * g
            state.v[i] = beta2 * state.v[i] + (1 - beta2) * g * g
            parameters[i] -= lr * (state.m[i] / c1) / ((state.v[i] / c2).squareRoot() + epsilon)
        }
        return norm
    }
}
