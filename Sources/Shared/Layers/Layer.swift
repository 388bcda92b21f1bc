/// One node's buffers for the current batch, laid out NCHW.
///
/// `value` is the primal activation. The other three exist only in the modes that need them:
/// `tangent` (forward-mode derivative along a parameter direction v), `cotangent`
/// (reverse-mode derivative of the loss) and `cotangentTangent` (the tangent of the
/// cotangent, from which the Hessian-vector product is read). A `nil` tangent means zero
/// (the network input has none); a `nil` cotangent means nobody needs it.
public struct Activation<Scalar: EngineScalar> {
    public var shape: FeatureShape
    public var value: UnsafeMutablePointer<Scalar>
    public var tangent: UnsafeMutablePointer<Scalar>?
    public var cotangent: UnsafeMutablePointer<Scalar>?
    public var cotangentTangent: UnsafeMutablePointer<Scalar>?
}

/// What a layer reads and writes in one call.
///
/// When `accumulate[i]` is true the layer adds into input i's cotangent (another consumer
/// already wrote it); otherwise it overwrites it. Layers process inputs in index order.
public struct LayerIO<Scalar: EngineScalar> {
    public var batch: Int
    public var inputs: [Activation<Scalar>]
    public var output: Activation<Scalar>
    public var accumulate: [Bool]
    public var workspace: Workspace<Scalar>
}

/// The parameter-side buffers of one call; each is the whole flat buffer, and a layer
/// touches only its own slices (its offsets are fixed when the network is built).
///
/// - `values`: theta. `direction`: v of the Hessian-vector product, or nil.
/// - `gradient`: receives dL/dtheta (the layer overwrites its slices), or nil if not wanted.
/// - `gradientTangent`: receives H v (the layer overwrites its slices), or nil.
public struct ParameterIO<Scalar: EngineScalar> {
    public var values: UnsafePointer<Scalar>
    public var direction: UnsafePointer<Scalar>? = nil
    public var gradient: UnsafeMutablePointer<Scalar>? = nil
    public var gradientTangent: UnsafeMutablePointer<Scalar>? = nil
}

/// A differentiable layer: its forward pass, its backward pass (vector-Jacobian product)
/// and the two tangent rules that make Hessian-vector products exact.
///
/// Forward-over-reverse: `forwardTangent` propagates a tangent (the directional
/// derivative along the parameter direction v) through the forward pass, and
/// `backwardTangent` runs the backward pass and its own tangent at once, producing both
/// the cotangents and their tangents. The tangent of the parameter gradient is H v.
/// Adding a layer means writing one type with these four rules and one case in `LayerKind`.
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

/// A named parameter tensor a layer owns; `offset` is its place in the flat buffer.
public struct ParameterSpec: Hashable, Sendable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Scratch memory shared by all layers of one network (one per thread).
public final class Workspace<Scalar: EngineScalar> {
    /// Unfolded columns; room for two images' columns (primal and tangent).
    public let columns: Storage<Scalar>
    /// Column-space cotangents; room for two as well.
    public let columnCotangents: Storage<Scalar>
    /// Small matrices built per call (stacked weights).
    public let small: Storage<Scalar>
    /// Transposed weight gradients and their tangents, accumulated over a batch.
    public let weightGradients: Storage<Scalar>

    init(columnCount: Int, smallCount: Int) {
        columns = Storage(count: 2 * columnCount)
        columnCotangents = Storage(count: 2 * columnCount)
        small = Storage(count: smallCount)
        weightGradients = Storage(count: smallCount)
    }
}

/// Writes `value` into `destination`, or adds it when `accumulate` is set.
@inline(__always)
func store<S: EngineScalar>(
    _ destination: UnsafeMutablePointer<S>, _ index: Int, _ value: S, accumulate: Bool
) {
    if accumulate { destination[index] += value } else { destination[index] = value }
}
