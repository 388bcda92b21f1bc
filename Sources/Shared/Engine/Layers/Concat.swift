import Core

/// Channel concatenation of inputs with equal height and width, in input order.
public struct Concat<Scalar: EngineScalar>: Layer {
    let inputs: [FeatureShape]
    let output: FeatureShape

    public var parameterSpecs: [ParameterSpec] { [] }
    public var primalReads: PrimalReads { .none }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        gather(io.inputs.map { Optional($0.value) }, into: io.output.value, batch: io.batch)
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dy = io.output.cotangent else { return }
        split(dy, into: io.inputs.map(\.cotangent), accumulate: io.accumulate, batch: io.batch)
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent else { return }
        gather(io.inputs.map(\.tangent), into: yt, batch: io.batch)
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dyt = io.output.cotangentTangent else { return }
        split(dyt, into: io.inputs.map(\.cotangentTangent), accumulate: io.accumulate, batch: io.batch)
    }

    /// Copies each input (nil = zeros) into its channel range of every sample.
    private func gather(
        _ sources: [UnsafeMutablePointer<Scalar>?], into y: UnsafeMutablePointer<Scalar>, batch: Int
    ) {
        for b in 0..<batch {
            var dst = y + b * output.count
            for (k, shape) in inputs.enumerated() {
                if let src = sources[k] {
                    dst.update(from: src + b * shape.count, count: shape.count)
                } else {
                    dst.update(repeating: 0, count: shape.count)
                }
                dst += shape.count
            }
        }
    }

    private func split(
        _ dy: UnsafeMutablePointer<Scalar>, into targets: [UnsafeMutablePointer<Scalar>?],
        accumulate: [Bool], batch: Int
    ) {
        for b in 0..<batch {
            var src = dy + b * output.count
            for (k, shape) in inputs.enumerated() {
                defer { src += shape.count }
                guard let dst = targets[k].map({ $0 + b * shape.count }) else { continue }
                if accumulate[k] {
                    for i in 0..<shape.count { dst[i] += src[i] }
                } else {
                    dst.update(from: src, count: shape.count)
                }
            }
        }
    }
}

/// A channel concatenation node; its inputs must share height and width.
public struct ConcatDefinition: LayerDefinition {
    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        guard let first = inputs.first, inputs.allSatisfy({ $0.height == first.height && $0.width == first.width }) else {
            throw .invalid("concat '\(node)': inputs differ in size \(inputs)")
        }
        return FeatureShape(channels: inputs.reduce(0) { $0 + $1.channels }, height: first.height, width: first.width)
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] { [] }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> {
        AnyLayer(Concat<S>(inputs: node.inputs, output: node.output))
    }
}
