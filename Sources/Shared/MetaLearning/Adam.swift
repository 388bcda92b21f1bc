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

    /// The gradient's L2 norm, summed in Float64 in index order.
    public static func norm(_ gradient: UnsafeBufferPointer<Float>) -> Float {
        var squared: Double = 0
        for g in gradient { squared += Double(g) * Double(g) }
        return Float(squared.squareRoot())
    }

    /// Applies one update to `parameters` with `gradient` (clipped first if configured) and
    /// returns the gradient norm before clipping (what training reports).
    @discardableResult
    public func update(parameters: inout [Float], gradient: [Float], state: inout State) -> Float {
        precondition(parameters.count == gradient.count, "size mismatch")
        return parameters.withUnsafeMutableBufferPointer { p in
            gradient.withUnsafeBufferPointer { g in
                let norm = Self.norm(g)
                apply(p, g, norm: norm, &state)
                return norm
            }
        }
    }

    /// Applies one update to `parameters[range]` with `gradient[range]`, in place (`state`
    /// holds `range.count` moments); the same bits as `update` on copies of the slices. The
    /// norm is computed only if clipping needs it.
    public func update(parameters: inout [Float], range: Range<Int>, gradient: [Float], state: inout State) {
        precondition(parameters.count == gradient.count && range.clamped(to: parameters.indices) == range, "size mismatch")
        parameters.withUnsafeMutableBufferPointer { p in
            gradient.withUnsafeBufferPointer { g in
                update(parameters: UnsafeMutableBufferPointer(rebasing: p[range]), gradient: UnsafeBufferPointer(rebasing: g[range]),
                       state: &state)
            }
        }
    }

    /// Applies one update in place; the norm is computed only if clipping needs it.
    public func update(parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>, state: inout State) {
        apply(parameters, gradient, norm: clipNorm == nil ? nil : Self.norm(gradient), &state)
    }

    private func apply(_ parameters: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>,
                       norm: Float?, _ state: inout State) {
        precondition(parameters.count == gradient.count && state.m.count == gradient.count && state.v.count == gradient.count,
                     "size mismatch")
        var scale: Float = 1
        if let clip = clipNorm, let norm, norm > clip, norm > 0 { scale = clip / norm }
        state.step += 1
        let t = state.step
        let lr = learningRate(at: t)
        let c1 = 1 - Float.pow(beta1, t), c2 = 1 - Float.pow(beta2, t)
        let beta1 = beta1, beta2 = beta2, epsilon = epsilon
        guard let p = parameters.baseAddress, let g = gradient.baseAddress else { return }
        state.m.withUnsafeMutableBufferPointer { mb in
            state.v.withUnsafeMutableBufferPointer { vb in
                let m = mb.baseAddress!, v = vb.baseAddress!
                // Element-wise with no reduction: a vectorised loop gives the scalar loop's bits.
                for i in 0..<gradient.count {
                    let gi = g[i] * scale
                    m[i] = beta1 * m[i] + (1 - beta1) * gi
                    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                    p[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
                }
            }
        }
    }
}
