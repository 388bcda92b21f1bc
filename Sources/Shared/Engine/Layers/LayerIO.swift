import Core

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
/// already wrote it); otherwise it overwrites it (and likewise for the cotangent tangents).
/// Layers process inputs in index order. `state` is the layer's saved state for this pass
/// (`Layer.stateBytes` long, nil if it has none): it lives with the node buffers, so a
/// `Network.Tape` keeps it with them.
public struct LayerIO<Scalar: EngineScalar> {
    public var batch: Int
    public var inputs: [Activation<Scalar>]
    public var output: Activation<Scalar>
    public var accumulate: [Bool]
    public var workspace: Workspace<Scalar>
    public var state: UnsafeMutableRawPointer?
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
