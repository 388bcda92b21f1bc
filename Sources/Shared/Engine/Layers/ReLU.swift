import Core

/// y = max(x, 0). The derivative is the mask [y > 0]; the second derivative is zero
/// almost everywhere, so both tangent rules apply the same mask.
public struct ReLU<Scalar: EngineScalar>: Layer {
    public var parameterSpecs: [ParameterSpec] { [] }
    /// The mask is its output's sign; nothing else.
    public var primalReads: PrimalReads { PrimalReads(inputValues: false, outputValue: true, outputCotangent: false) }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let n = io.batch * io.output.shape.count
        let x = io.inputs[0].value, y = io.output.value
        for i in 0..<n { y[i] = max(x[i], 0) }
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dx = io.inputs[0].cotangent, let dy = io.output.cotangent else { return }
        Self.mask(dy, by: io.output.value, into: dx, count: io.batch * io.output.shape.count,
                  accumulate: io.accumulate[0])
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent else { return }
        let n = io.batch * io.output.shape.count
        guard let xt = io.inputs[0].tangent else {
            yt.update(repeating: 0, count: n)
            return
        }
        Self.mask(xt, by: io.output.value, into: yt, count: n, accumulate: false)
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dxt = io.inputs[0].cotangentTangent, let dyt = io.output.cotangentTangent
        else { return }
        Self.mask(dyt, by: io.output.value, into: dxt, count: io.batch * io.output.shape.count,
                  accumulate: io.accumulate[0])
    }

    @inline(__always)
    static func mask(
        _ src: UnsafeMutablePointer<Scalar>, by y: UnsafeMutablePointer<Scalar>,
        into dst: UnsafeMutablePointer<Scalar>, count: Int, accumulate: Bool
    ) {
        // Multiply by the 0/1 mask rather than select: a conditional load or store is not vectorised.
        if accumulate {
            for i in 0..<count { dst[i] += src[i] * (y[i] > 0 ? 1 : 0) }
        } else {
            for i in 0..<count { dst[i] = src[i] * (y[i] > 0 ? 1 : 0) }
        }
    }
}

/// A ReLU node (fused into the GroupNorm before it when it is that GroupNorm's only reader).
public struct ReLUDefinition: LayerDefinition {
    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        try ModelError.single(inputs, node)
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] { [] }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> { AnyLayer(ReLU<S>()) }
}
