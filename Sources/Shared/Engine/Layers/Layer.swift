/// A differentiable layer: its forward pass, its backward pass (vector-Jacobian product)
/// and the two tangent rules that make Hessian-vector products exact.
///
/// Forward-over-reverse: `forwardTangent` propagates a tangent (the directional
/// derivative along the parameter direction v) through the forward pass, and
/// `backwardTangent` runs the backward pass and its own tangent at once, producing both
/// the cotangents and their tangents. The tangent of the parameter gradient is H v.
/// Adding a layer means writing one type with these four rules, a `LayerDefinition` that
/// says what a node of its kind looks like, and one case in `ModelSpec.Op`.
public protocol Layer {
    associatedtype Scalar: EngineScalar
    /// The parameters the layer owns, in the order they are laid out.
    var parameterSpecs: [ParameterSpec] { get }
    /// y = f(x; theta). Saves what the backward pass needs in the layer's own scratch.
    func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// x-bar (+)= (df/dx)^T y-bar and theta-bar = (df/dtheta)^T y-bar (if `p.gradient`).
    func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// y-dot = (df/dx) x-dot + (df/dtheta) v. Called right after `forward`.
    func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// The backward pass together with its tangent: x-bar, x-bar-dot, and (if wanted)
    /// theta-bar and theta-bar-dot (= the layer's slice of H v).
    func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// `forward` then `forwardTangent`; a layer may override it to share work between them.
    func forwardWithTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
}

extension Layer {
    public func forwardWithTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        forward(io, p)
        forwardTangent(io, p)
    }
}

/// The four passes a network runs a layer in.
enum Pass { case forward, backward, forwardWithTangent, backwardTangent }

extension Layer {
    @inline(__always)
    func run(_ pass: Pass, _ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        switch pass {
        case .forward: forward(io, p)
        case .backward: backward(io, p)
        case .forwardWithTangent: forwardWithTangent(io, p)
        case .backwardTangent: backwardTangent(io, p)
        }
    }
}

/// Writes `value` into `destination`, or adds it when `accumulate` is set.
@inline(__always)
func store<S: EngineScalar>(
    _ destination: UnsafeMutablePointer<S>, _ index: Int, _ value: S, accumulate: Bool
) {
    if accumulate { destination[index] += value } else { destination[index] = value }
}
