import Core

/// What a layer type knows about a node of its kind, whatever the scalar type: the shape it
/// outputs, the parameter tensors it owns, and how to build it. Each layer file defines one,
/// so a layer's shapes are written in exactly one place.
public protocol LayerDefinition: Sendable {
    /// The output shape for `inputs`. Throws `ModelError` naming `node` if they do not fit.
    func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape
    /// The parameter tensors, as a name suffix (`weight`) and a shape, in layout order.
    func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape]
    /// The layer of one node, built for scalar `S`.
    ///
    /// Implementations carry `@_specialize(where S == Float)` (and `Double`): the network
    /// calls this through the existential, and the specialisation is what makes the layer's
    /// kernels specialised code rather than generic code.
    func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S>
}

/// A parameter tensor as a layer declares it: its name suffix and shape.
public struct ParameterShape: Hashable, Sendable {
    public var suffix: String
    public var shape: [Int]
    public init(_ suffix: String, _ shape: [Int]) {
        self.suffix = suffix
        self.shape = shape
    }
}

/// A named parameter tensor a layer owns; `offset` is its place in the flat buffer.
public struct ParameterSpec: Hashable, Sendable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Everything a layer is built from: its input and output shapes, its parameters' places in
/// the flat buffer (in the order of `parameterShapes`), the batch capacity, and whether the
/// network fused the following ReLU into it.
public struct LayerNode: Sendable {
    public var inputs: [FeatureShape]
    public var output: FeatureShape
    public var parameters: [ParameterSpec]
    public var capacity: Int
    public var fusedReLU: Bool
}

/// A built layer with its type erased: the network keeps one per node and runs it by pass.
/// The closure is created where the layer's type is concrete, so the kernels it reaches are
/// specialised.
public struct AnyLayer<Scalar: EngineScalar> {
    let run: (Pass, LayerIO<Scalar>, ParameterIO<Scalar>) -> Void
    public let parameterSpecs: [ParameterSpec]
    /// Floats of workspace the layer needs: unfolded columns per image, and small matrices.
    public let columnCount: Int
    public let smallCount: Int
    /// Bytes of saved state per call (`Layer.stateBytes`).
    public let stateBytes: Int
    /// What the layer reads after its forward pass (`Layer.primalReads`).
    public let primalReads: PrimalReads

    init<L: Layer>(_ layer: L, columnCount: Int = 0, smallCount: Int = 0) where L.Scalar == Scalar {
        run = { layer.run($0, $1, $2) }
        parameterSpecs = layer.parameterSpecs
        stateBytes = layer.stateBytes
        primalReads = layer.primalReads
        self.columnCount = columnCount
        self.smallCount = smallCount
    }
}

extension ModelError {
    /// The one input of a single-input layer, or an error naming the node.
    static func single(_ inputs: [FeatureShape], _ node: String) throws(ModelError) -> FeatureShape {
        guard inputs.count == 1 else { throw .invalid("node '\(node)' takes one input, got \(inputs.count)") }
        return inputs[0]
    }
}
