/// A differentiable layer: its forward pass, its backward pass (vector-Jacobian product)
/// and the two tangent rules that make Hessian-vector products exact.
///
/// Forward-over-reverse: a Hessian-vector product first runs the primal passes (`forward`,
/// `backward`), or replays them from a `Network.Tape`; then `forwardTangent` propagates a
/// tangent (the directional derivative along the parameter direction v) through the
/// forward pass, and `backwardTangent` the tangent of the backward pass. The tangent of the
/// parameter gradient is H v. The tangent rules read only what the primal passes left in
/// the node buffers and in the layer's saved state (`LayerIO.state`), never recompute it, so a
/// replayed product has the same bits as a recomputed one.
/// Adding a layer means writing one type with these four rules, a `LayerDefinition` that
/// says what a node of its kind looks like, and one case in `ModelSpec.Op`.
public protocol Layer {
    associatedtype Scalar: EngineScalar
    /// The parameters the layer owns, in the order they are laid out.
    var parameterSpecs: [ParameterSpec] { get }
    /// Bytes of saved state per call for `capacity` images (in `LayerIO.state`); 0 if none.
    var stateBytes: Int { get }
    /// Which primal buffers the layer reads after its forward pass (in `backward` and the
    /// tangent rules). A kept pass (`Network.Tape`) holds only the buffers some layer reads
    /// then; the rest are scratch. `.all` unless the layer says less.
    var primalReads: PrimalReads { get }
    /// y = f(x; theta). Saves what the other passes need in `io.state`.
    func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// x-bar (+)= (df/dx)^T y-bar and theta-bar = (df/dtheta)^T y-bar (if `p.gradient`).
    func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// y-dot = (df/dx) x-dot + (df/dtheta) v, after `forward` (the primal values are final).
    func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
    /// The tangent of the backward pass, after `backward` (the output cotangent is final and
    /// the input cotangents are nil): x-bar-dot, and theta-bar-dot (= the layer's slice of
    /// H v) if `p.gradientTangent`.
    func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>)
}

extension Layer {
    public var stateBytes: Int { 0 }
    public var primalReads: PrimalReads { .all }
}

/// The primal buffers a layer reads after its forward pass: its inputs' values and its
/// output's value (in `backward`, `forwardTangent` or `backwardTangent`), and its output's
/// cotangent in the tangent rules (`backward` reads it too, but in the same pass that writes
/// it). Its saved state (`LayerIO.state`) is always kept.
public struct PrimalReads: Sendable, Equatable {
    public var inputValues: Bool
    public var outputValue: Bool
    public var outputCotangent: Bool

    public static let all = PrimalReads(inputValues: true, outputValue: true, outputCotangent: true)
    /// A linear layer whose rules read only its saved state (upsampling, concatenation,
    /// max-pooling by its recorded winners).
    public static let none = PrimalReads(inputValues: false, outputValue: false, outputCotangent: false)
}

/// The four passes a network runs a layer in.
enum Pass { case forward, backward, forwardTangent, backwardTangent }

extension Layer {
    @inline(__always)
    func run(_ pass: Pass, _ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        switch pass {
        case .forward: forward(io, p)
        case .backward: backward(io, p)
        case .forwardTangent: forwardTangent(io, p)
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
