import Core

/// Square convolution, stride 1, zero padding k/2 (so the spatial size is kept), with an
/// optional bias. Weights are OIHW, row-major, as in PyTorch.
///
/// Each image is unfolded with `im2col` and multiplied by the weight matrix with one BLAS
/// `gemm` (1x1 kernels skip the unfolding). With K = Cin*k*k and P = H*W per image:
/// - forward:         y = W[Cout,K] col(x)[K,P] + b
/// - backward:        W-bar += y-bar col(x)^T,  b-bar += sum_P y-bar,  x-bar = W~ col(y-bar)
/// - forwardTangent:  y-dot = [W | W-dot] [col(x-dot); col(x)] + b-dot   (one gemm, K doubled)
/// - backwardTangent: W-bar-dot = y-bar-dot col(x)^T + y-bar col(x-dot)^T,
///                    x-bar-dot = [W~ | W-dot~] [col(y-bar-dot); col(y-bar)], b-bar-dot = sum y-bar-dot.
/// W~ [Cin, Cout*k*k] is W with input and output channels swapped and the kernel flipped: the
/// input cotangent is the transposed convolution of y-bar, computed as an ordinary
/// convolution (an unfolding and one gemm that writes x-bar directly, no scatter-add).
/// The convolution is bilinear in (x, W), so these are its exact first and second derivatives.
///
/// In Float32 a kernel larger than 1 runs on oneDNN's convolution primitives instead
/// (`ConvolutionPrimitives`, same rules, direct or Winograd, chosen by `BLAS.convolution`);
/// Float64 always unfolds, so the float64 reference is an independent implementation.
public struct Conv2d<Scalar: EngineScalar>: Layer {
    let input: FeatureShape
    let outChannels: Int
    let kernel: Int
    let hasBias: Bool
    let weight: ParameterSpec
    let bias: ParameterSpec?
    /// The oneDNN primitives that compute this layer, or nil for im2col + gemm.
    let primitives: ConvolutionPrimitives?

    /// Rows of one image's column matrix.
    var columnRows: Int { input.channels * kernel * kernel }
    /// Rows of one image's output-cotangent column matrix (for the transposed convolution).
    var cotangentColumnRows: Int { outChannels * kernel * kernel }
    /// Floats one image's column matrices need in the workspace.
    var columnCount: Int { kernel == 1 ? 0 : max(columnRows, cotangentColumnRows) * input.plane }
    /// Floats of per-call weight matrices (stacked and flipped weights).
    var smallCount: Int { 2 * outChannels * columnRows }

    public var parameterSpecs: [ParameterSpec] { [weight] + (bias.map { [$0] } ?? []) }
    /// The primitives keep the forward's staged input for the pass's other calls.
    public var stateBytes: Int { primitives?.stateBytes ?? 0 }

    private var plane: Int { input.plane }
    private var outCount: Int { outChannels * input.plane }

    /// Returns the image's columns: the image itself for 1x1 kernels.
    @inline(__always)
    private func columns(
        of x: UnsafeMutablePointer<Scalar>, into buffer: UnsafeMutablePointer<Scalar>
    ) -> UnsafeMutablePointer<Scalar> {
        if kernel == 1 { return x }
        im2col(x, channels: input.channels, height: input.height, width: input.width,
               kernel: kernel, into: buffer, rowStride: plane)
        return buffer
    }

    /// y[o, :] = b[o] (or 0): the starting value the gemm accumulates onto.
    @inline(__always)
    private func fillBias(_ y: UnsafeMutablePointer<Scalar>, _ b: UnsafePointer<Scalar>?) {
        for o in 0..<outChannels {
            (y + o * plane).update(repeating: b?[o] ?? 0, count: plane)
        }
    }

    /// b-bar[o] (+)= sum over pixels and images of dy[o].
    @inline(__always)
    private func biasGradient(
        _ dy: UnsafeMutablePointer<Scalar>, batch: Int, into g: UnsafeMutablePointer<Scalar>
    ) {
        for o in 0..<outChannels {
            var s: Scalar = 0
            for b in 0..<batch { s += sum(dy + b * outCount + o * plane, plane) }
            g[o] = s
        }
    }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let w = p.values + weight.offset
        let b = bias.map { p.values + $0.offset }
        if let primitives {
            return primitives.forward(x: io.inputs[0].value, weight: w, bias: b, y: io.output.value,
                                      batch: io.batch, state: io.state, scratch: io.workspace.primitives)
        }
        let colBuffer = io.workspace.columns.pointer
        for n in 0..<io.batch {
            let x = io.inputs[0].value + n * input.count
            let y = io.output.value + n * outCount
            let col = columns(of: x, into: colBuffer)
            fillBias(y, b)
            Scalar.gemm(transA: false, transB: false, m: outChannels, n: plane, k: columnRows,
                        alpha: 1, a: w, lda: columnRows, b: col, ldb: plane,
                        beta: 1, c: y, ldc: plane)
        }
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dy = io.output.cotangent else { return }
        let w = p.values + weight.offset
        if let primitives {
            primitives.backward(
                x: io.inputs[0].value, xTangent: nil, weight: w, weightTangent: nil, dy: dy, dyTangent: nil,
                dx: io.inputs[0].cotangent, dxTangent: nil, accumulate: io.accumulate[0],
                weightGradient: p.gradient.map { $0 + weight.offset }, weightGradientTangent: nil,
                batch: io.batch, state: io.state, scratch: io.workspace.primitives)
            if let g = p.gradient, let bias { biasGradient(dy, batch: io.batch, into: g + bias.offset) }
            return
        }
        let colBuffer = io.workspace.columns.pointer
        let dcol = io.workspace.columnCotangents.pointer
        let dxAll = io.inputs[0].cotangent
        let wgT = io.workspace.weightGradients.pointer
        let wFlipped = io.workspace.small.pointer
        let kt = cotangentColumnRows
        if dxAll != nil && kernel > 1 { flipped(w, into: wFlipped, stride: kt) }
        for n in 0..<io.batch {
            let dyn = dy + n * outCount
            if p.gradient != nil {
                let col = columns(of: io.inputs[0].value + n * input.count, into: colBuffer)
                weightGradientTransposed(col: col, dy: dyn, into: wgT, first: n == 0)
            }
            if let dxAll {
                let dx = dxAll + n * input.count
                let beta: Scalar = io.accumulate[0] ? 1 : 0
                if kernel == 1 {
                    Scalar.gemm(transA: true, transB: false, m: input.channels, n: plane, k: outChannels,
                                alpha: 1, a: w, lda: input.channels, b: dyn, ldb: plane,
                                beta: beta, c: dx, ldc: plane)
                } else {
                    cotangentColumns(dyn, into: dcol)
                    Scalar.gemm(transA: false, transB: false, m: input.channels, n: plane, k: kt,
                                alpha: 1, a: wFlipped, lda: kt, b: dcol, ldb: plane,
                                beta: beta, c: dx, ldc: plane)
                }
            }
        }
        if let g = p.gradient {
            transpose(wgT, into: g + weight.offset)
            if let bias { biasGradient(dy, batch: io.batch, into: g + bias.offset) }
        }
    }

    /// W-bar^T [K, Cout] (+)= col [K, P] dy^T. The weight gradient is accumulated transposed
    /// because this orientation of the product is far faster for small Cout.
    @inline(__always)
    private func weightGradientTransposed(
        col: UnsafePointer<Scalar>, dy: UnsafePointer<Scalar>, into wgT: UnsafeMutablePointer<Scalar>,
        first: Bool
    ) {
        Scalar.gemm(transA: false, transB: true, m: columnRows, n: outChannels, k: plane,
                    alpha: 1, a: col, lda: plane, b: dy, ldb: plane,
                    beta: first ? 0 : 1, c: wgT, ldc: outChannels)
    }

    /// W-bar [Cout, K] = (W-bar^T)^T.
    @inline(__always)
    private func transpose(_ wgT: UnsafePointer<Scalar>, into g: UnsafeMutablePointer<Scalar>) {
        let k = columnRows
        for o in 0..<outChannels {
            for r in 0..<k { g[o * k + r] = wgT[r * outChannels + o] }
        }
    }

    /// Writes W~ [Cin, Cout*k*k] (channels swapped, kernel flipped) into `out` with row stride
    /// `stride`, so that x-bar = W~ col(y-bar).
    @inline(__always)
    private func flipped(_ w: UnsafePointer<Scalar>, into out: UnsafeMutablePointer<Scalar>, stride: Int) {
        let kk = kernel * kernel
        for o in 0..<outChannels {
            for c in 0..<input.channels {
                let src = w + (o * input.channels + c) * kk
                let dst = out + c * stride + o * kk
                for t in 0..<kk { dst[t] = src[kk - 1 - t] }
            }
        }
    }

    /// Unfolds one image's output cotangent (same spatial size as the input).
    @inline(__always)
    private func cotangentColumns(
        _ dy: UnsafePointer<Scalar>, into buffer: UnsafeMutablePointer<Scalar>
    ) {
        im2col(dy, channels: outChannels, height: input.height, width: input.width,
               kernel: kernel, into: buffer, rowStride: plane)
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent, let v = p.direction else { return }
        let w = p.values + weight.offset
        let wt = v + weight.offset
        let bt = bias.map { v + $0.offset }
        let xt = io.inputs[0].tangent
        if let primitives {
            return primitives.forwardTangent(
                x: io.inputs[0].value, xTangent: xt, weight: w, weightTangent: wt, biasTangent: bt,
                yTangent: yt, batch: io.batch, state: io.state, scratch: io.workspace.primitives)
        }
        let k = columnRows
        // [W | W-dot] as one Cout x 2K matrix, so each image needs a single gemm.
        let stacked = io.workspace.small.pointer
        if xt != nil {
            for o in 0..<outChannels {
                (stacked + o * 2 * k).update(from: w + o * k, count: k)
                (stacked + o * 2 * k + k).update(from: wt + o * k, count: k)
            }
        }
        let colBuffer = io.workspace.columns.pointer
        for n in 0..<io.batch {
            let x = io.inputs[0].value + n * input.count
            let y = yt + n * outCount
            fillBias(y, bt)
            if let xt {
                let xtn = xt + n * input.count
                if kernel == 1 {
                    Scalar.gemm(transA: false, transB: false, m: outChannels, n: plane, k: k,
                                alpha: 1, a: w, lda: k, b: xtn, ldb: plane, beta: 1, c: y, ldc: plane)
                    Scalar.gemm(transA: false, transB: false, m: outChannels, n: plane, k: k,
                                alpha: 1, a: wt, lda: k, b: x, ldb: plane, beta: 1, c: y, ldc: plane)
                } else {
                    im2col(xtn, channels: input.channels, height: input.height, width: input.width,
                           kernel: kernel, into: colBuffer, rowStride: plane)
                    im2col(x, channels: input.channels, height: input.height, width: input.width,
                           kernel: kernel, into: colBuffer + k * plane, rowStride: plane)
                    Scalar.gemm(transA: false, transB: false, m: outChannels, n: plane, k: 2 * k,
                                alpha: 1, a: stacked, lda: 2 * k, b: colBuffer, ldb: plane,
                                beta: 1, c: y, ldc: plane)
                }
            } else {
                let col = columns(of: x, into: colBuffer)
                Scalar.gemm(transA: false, transB: false, m: outChannels, n: plane, k: k,
                            alpha: 1, a: wt, lda: k, b: col, ldb: plane, beta: 1, c: y, ldc: plane)
            }
        }
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dy = io.output.cotangent, let dyt = io.output.cotangentTangent,
              let v = p.direction
        else { return }
        let w = p.values + weight.offset
        let wt = v + weight.offset
        let xt = io.inputs[0].tangent
        let dxt = io.inputs[0].cotangentTangent
        if let primitives {
            primitives.backward(
                x: io.inputs[0].value, xTangent: xt, weight: w, weightTangent: wt, dy: dy, dyTangent: dyt,
                dx: nil, dxTangent: dxt, accumulate: io.accumulate[0], weightGradient: nil,
                weightGradientTangent: p.gradientTangent.map { $0 + weight.offset },
                batch: io.batch, state: io.state, scratch: io.workspace.primitives)
            if let gt = p.gradientTangent, let bias { biasGradient(dyt, batch: io.batch, into: gt + bias.offset) }
            return
        }
        let k = columnRows
        let colBuffer = io.workspace.columns.pointer
        let colTangent = colBuffer + k * plane
        let dcol = io.workspace.columnCotangents.pointer
        let wgtT = io.workspace.weightGradients.pointer
        let kt = cotangentColumnRows
        // [W~ | W-dot~] as one Cin x 2*Cout*k*k matrix.
        let stackedFlipped = io.workspace.small.pointer
        if kernel > 1 && dxt != nil {
            flipped(w, into: stackedFlipped, stride: 2 * kt)
            flipped(wt, into: stackedFlipped + kt, stride: 2 * kt)
        }
        for n in 0..<io.batch {
            let x = io.inputs[0].value + n * input.count
            let dyn = dy + n * outCount, dytn = dyt + n * outCount
            if p.gradientTangent != nil {
                let col = columns(of: x, into: colBuffer)
                weightGradientTransposed(col: col, dy: dytn, into: wgtT, first: n == 0)
                if let xt {
                    let colt = columns(of: xt + n * input.count, into: colTangent)
                    weightGradientTransposed(col: colt, dy: dyn, into: wgtT, first: false)
                }
            }
            guard let dxt else { continue }
            let target = dxt + n * input.count
            let beta: Scalar = io.accumulate[0] ? 1 : 0
            if kernel == 1 {
                let cin = input.channels
                Scalar.gemm(transA: true, transB: false, m: cin, n: plane, k: outChannels,
                            alpha: 1, a: w, lda: cin, b: dytn, ldb: plane, beta: beta, c: target, ldc: plane)
                Scalar.gemm(transA: true, transB: false, m: cin, n: plane, k: outChannels,
                            alpha: 1, a: wt, lda: cin, b: dyn, ldb: plane, beta: 1, c: target, ldc: plane)
                continue
            }
            cotangentColumns(dytn, into: dcol)
            cotangentColumns(dyn, into: dcol + kt * plane)
            Scalar.gemm(transA: false, transB: false, m: input.channels, n: plane, k: 2 * kt,
                        alpha: 1, a: stackedFlipped, lda: 2 * kt, b: dcol, ldb: plane,
                        beta: beta, c: target, ldc: plane)
        }
        if let gt = p.gradientTangent {
            transpose(wgtT, into: gt + weight.offset)
            if let bias { biasGradient(dyt, batch: io.batch, into: gt + bias.offset) }
        }
    }
}

/// A convolution node: output channels, an odd square kernel of at most 7, and a bias.
public struct Conv2dDefinition: LayerDefinition {
    public var outChannels: Int
    public var kernel: Int
    public var bias: Bool

    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        let x = try ModelError.single(inputs, node)
        guard outChannels > 0, outChannels <= 4096, kernel > 0, kernel % 2 == 1, kernel <= 7 else {
            throw .invalid("conv '\(node)': bad channels \(outChannels) or kernel \(kernel)")
        }
        return FeatureShape(channels: outChannels, height: x.height, width: x.width)
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] {
        [ParameterShape("weight", [outChannels, inputs[0].channels, kernel, kernel])]
            + (bias ? [ParameterShape("bias", [outChannels])] : [])
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> {
        let input = node.inputs[0]
        let primitives = S.self == Float.self && kernel > 1 && BLAS.networkConvolution.usesPrimitives
            ? ConvolutionPrimitives(inChannels: input.channels, outChannels: outChannels, height: input.height,
                                    width: input.width, kernel: kernel, hasBias: bias, capacity: node.capacity)
            : nil
        let conv = Conv2d<S>(input: input, outChannels: outChannels, kernel: kernel, hasBias: bias,
                             weight: node.parameters[0], bias: bias ? node.parameters[1] : nil, primitives: primitives)
        // The primitives stage their operands in the workspace's own slots.
        return primitives == nil
            ? AnyLayer(conv, columnCount: conv.columnCount, smallCount: conv.smallCount)
            : AnyLayer(conv, columnCount: 0, smallCount: 0)
    }
}
