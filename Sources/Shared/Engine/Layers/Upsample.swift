import Core

/// Nearest-neighbour upsampling by 2: y[2i + a, 2j + b] = x[i, j]. Linear, so the tangent
/// is the same map and the cotangent is the sum over each 2x2 block.
public struct Upsample2<Scalar: EngineScalar>: Layer {
    let input: FeatureShape

    public var parameterSpecs: [ParameterSpec] { [] }
    public var primalReads: PrimalReads { .none }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        up(io.inputs[0].value, into: io.output.value, batch: io.batch)
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dx = io.inputs[0].cotangent, let dy = io.output.cotangent else { return }
        down(dy, into: dx, batch: io.batch, accumulate: io.accumulate[0])
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent else { return }
        guard let xt = io.inputs[0].tangent else {
            yt.update(repeating: 0, count: io.batch * io.output.shape.count)
            return
        }
        up(xt, into: yt, batch: io.batch)
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dxt = io.inputs[0].cotangentTangent, let dyt = io.output.cotangentTangent
        else { return }
        down(dyt, into: dxt, batch: io.batch, accumulate: io.accumulate[0])
    }

    private func up(_ x: UnsafeMutablePointer<Scalar>, into y: UnsafeMutablePointer<Scalar>, batch: Int) {
        let h = input.height, w = input.width, ow = 2 * w
        for plane in 0..<(batch * input.channels) {
            let xp = x + plane * h * w
            let yp = y + plane * 4 * h * w
            for i in 0..<h {
                let row = yp + 2 * i * ow
                for j in 0..<w {
                    let v = xp[i * w + j]
                    row[2 * j] = v
                    row[2 * j + 1] = v
                }
                (row + ow).update(from: row, count: ow)
            }
        }
    }

    private func down(
        _ dy: UnsafeMutablePointer<Scalar>, into dx: UnsafeMutablePointer<Scalar>, batch: Int,
        accumulate: Bool
    ) {
        let h = input.height, w = input.width, ow = 2 * w
        for plane in 0..<(batch * input.channels) {
            let xp = dx + plane * h * w
            let yp = dy + plane * 4 * h * w
            for i in 0..<h {
                let r0 = yp + 2 * i * ow, r1 = r0 + ow
                for j in 0..<w {
                    let s = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])
                    if accumulate { xp[i * w + j] += s } else { xp[i * w + j] = s }
                }
            }
        }
    }
}

/// A nearest-neighbour 2x upsampling node.
public struct UpsampleDefinition: LayerDefinition {
    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        let x = try ModelError.single(inputs, node)
        return FeatureShape(channels: x.channels, height: 2 * x.height, width: 2 * x.width)
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] { [] }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> { AnyLayer(Upsample2<S>(input: node.inputs[0])) }
}
