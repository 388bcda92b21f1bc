import Core

/// 2x2 max pooling with stride 2. The forward pass records which of the four inputs won
/// (the first maximum in row-major window order, as PyTorch does, so ties after a ReLU
/// route gradients identically) in its saved state, one byte per output element; all
/// derivative rules route through that choice.
public struct MaxPool2<Scalar: EngineScalar>: Layer {
    let input: FeatureShape
    let capacity: Int

    init(input: FeatureShape, capacity: Int) {
        self.input = input
        self.capacity = capacity
    }

    public var parameterSpecs: [ParameterSpec] { [] }
    public var primalReads: PrimalReads { .none }

    public var stateBytes: Int { capacity * input.channels * (input.height / 2) * (input.width / 2) }

    /// Winner offset (0...3) per output element.
    @inline(__always)
    private func winners(_ io: LayerIO<Scalar>) -> UnsafeMutablePointer<UInt8> {
        io.state!.bindMemory(to: UInt8.self, capacity: stateBytes)
    }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let x = io.inputs[0].value, y = io.output.value
        let winners = winners(io)
        let w = input.width, oh = input.height / 2, ow = input.width / 2
        let planes = io.batch * input.channels
        for plane in 0..<planes {
            let xp = x + plane * input.plane
            let yp = y + plane * oh * ow
            let wp = winners + plane * oh * ow
            for i in 0..<oh {
                let r0 = xp + 2 * i * w, r1 = r0 + w
                for j in 0..<ow {
                    var best = r0[2 * j], k: UInt8 = 0
                    if r0[2 * j + 1] > best { best = r0[2 * j + 1]; k = 1 }
                    if r1[2 * j] > best { best = r1[2 * j]; k = 2 }
                    if r1[2 * j + 1] > best { best = r1[2 * j + 1]; k = 3 }
                    yp[i * ow + j] = best
                    wp[i * ow + j] = k
                }
            }
        }
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dx = io.inputs[0].cotangent, let dy = io.output.cotangent else { return }
        scatter(dy, into: dx, winners: winners(io), batch: io.batch, accumulate: io.accumulate[0])
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent else { return }
        guard let xt = io.inputs[0].tangent else {
            yt.update(repeating: 0, count: io.batch * io.output.shape.count)
            return
        }
        let w = input.width, oh = input.height / 2, ow = input.width / 2
        let winners = winners(io)
        for plane in 0..<(io.batch * input.channels) {
            let xp = xt + plane * input.plane
            let yp = yt + plane * oh * ow
            let wp = winners + plane * oh * ow
            for i in 0..<oh {
                for j in 0..<ow {
                    let k = Int(wp[i * ow + j])
                    yp[i * ow + j] = xp[(2 * i + (k >> 1)) * w + 2 * j + (k & 1)]
                }
            }
        }
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dxt = io.inputs[0].cotangentTangent, let dyt = io.output.cotangentTangent
        else { return }
        scatter(dyt, into: dxt, winners: winners(io), batch: io.batch, accumulate: io.accumulate[0])
    }

    private func scatter(
        _ dy: UnsafeMutablePointer<Scalar>, into dx: UnsafeMutablePointer<Scalar>,
        winners: UnsafePointer<UInt8>, batch: Int, accumulate: Bool
    ) {
        let w = input.width, oh = input.height / 2, ow = input.width / 2
        if !accumulate { dx.update(repeating: 0, count: batch * input.count) }
        for plane in 0..<(batch * input.channels) {
            let xp = dx + plane * input.plane
            let yp = dy + plane * oh * ow
            let wp = winners + plane * oh * ow
            for i in 0..<oh {
                for j in 0..<ow {
                    let k = Int(wp[i * ow + j])
                    xp[(2 * i + (k >> 1)) * w + 2 * j + (k & 1)] += yp[i * ow + j]
                }
            }
        }
    }
}

/// A 2x2 max-pooling node; the input's height and width must be even.
public struct MaxPoolDefinition: LayerDefinition {
    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        let x = try ModelError.single(inputs, node)
        guard x.height % 2 == 0, x.width % 2 == 0 else { throw .invalid("maxpool '\(node)': odd size \(x)") }
        return FeatureShape(channels: x.channels, height: x.height / 2, width: x.width / 2)
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] { [] }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> {
        AnyLayer(MaxPool2<S>(input: node.inputs[0], capacity: node.capacity))
    }
}
