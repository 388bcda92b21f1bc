/// Square convolution, stride 1, zero padding k/2 (so the spatial size is kept), with an
/// optional bias. Weights are OIHW, row-major, as in PyTorch.
///
/// Each image is unfolded with `im2col` and multiplied by the weight matrix with one BLAS
/// `gemm` (1x1 kernels skip the unfolding). With K = Cin*k*k and P = H*W per image:
/// - forward:         y = W[Cout,K] col(x)[K,P] + b
/// - backward:        W-bar += y-bar col(x)^T,  b-bar += sum_P y-bar,  x-bar = col2im(W^T y-bar)
/// - forwardTangent:  y-dot = [W | W-dot] [col(x-dot); col(x)] + b-dot   (one gemm, K doubled)
/// - backwardTangent: additionally W-bar-dot = y-bar-dot col(x)^T + y-bar col(x-dot)^T,
///                    x-bar-dot = col2im(W^T y-bar-dot + W-dot^T y-bar), b-bar-dot = sum y-bar-dot.
/// The convolution is bilinear in (x, W), so these are its exact first and second derivatives.
public struct Conv2d<Scalar: EngineScalar>: Layer {
    let input: FeatureShape
    let outChannels: Int
    let kernel: Int
    let hasBias: Bool
    let weight: ParameterSpec
    let bias: ParameterSpec?

    /// Rows of one image's column matrix.
    var columnRows: Int { input.channels * kernel * kernel }
    /// Floats one image's column matrix needs in the workspace.
    var columnCount: Int { kernel == 1 ? 0 : columnRows * input.plane }

    public var parameterSpecs: [ParameterSpec] { [weight] + (bias.map { [$0] } ?? []) }

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
            for b in 0..<batch {
                let row = dy + b * outCount + o * plane
                for i in 0..<plane { s += row[i] }
            }
            g[o] = s
        }
    }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let w = p.values + weight.offset
        let b = bias.map { p.values + $0.offset }
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
        let colBuffer = io.workspace.columns.pointer
        let dcol = io.workspace.columnCotangents.pointer
        let dxAll = io.inputs[0].cotangent
        for n in 0..<io.batch {
            let dyn = dy + n * outCount
            if let g = p.gradient {
                let col = columns(of: io.inputs[0].value + n * input.count, into: colBuffer)
                Scalar.gemm(transA: false, transB: true, m: outChannels, n: columnRows, k: plane,
                            alpha: 1, a: dyn, lda: plane, b: col, ldb: plane,
                            beta: n == 0 ? 0 : 1, c: g + weight.offset, ldc: columnRows)
            }
            if let dxAll {
                inputCotangent(w: w, dy: dyn, dx: dxAll + n * input.count, dcol: dcol,
                               accumulate: io.accumulate[0])
            }
        }
        if let g = p.gradient, let bias { biasGradient(dy, batch: io.batch, into: g + bias.offset) }
    }

    /// dx (+)= col2im(W^T dy) for one image.
    @inline(__always)
    private func inputCotangent(
        w: UnsafePointer<Scalar>, dy: UnsafeMutablePointer<Scalar>, dx: UnsafeMutablePointer<Scalar>,
        dcol: UnsafeMutablePointer<Scalar>, accumulate: Bool
    ) {
        if kernel == 1 {
            Scalar.gemm(transA: true, transB: false, m: columnRows, n: plane, k: outChannels,
                        alpha: 1, a: w, lda: columnRows, b: dy, ldb: plane,
                        beta: accumulate ? 1 : 0, c: dx, ldc: plane)
            return
        }
        Scalar.gemm(transA: true, transB: false, m: columnRows, n: plane, k: outChannels,
                    alpha: 1, a: w, lda: columnRows, b: dy, ldb: plane,
                    beta: 0, c: dcol, ldc: plane)
        if !accumulate { dx.update(repeating: 0, count: input.count) }
        col2imAdd(dcol, rowStride: plane, channels: input.channels, height: input.height,
                  width: input.width, kernel: kernel, into: dx)
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let yt = io.output.tangent, let v = p.direction else { return }
        let w = p.values + weight.offset
        let wt = v + weight.offset
        let bt = bias.map { v + $0.offset }
        let xt = io.inputs[0].tangent
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
        let k = columnRows
        let xt = io.inputs[0].tangent
        let dx = io.inputs[0].cotangent, dxt = io.inputs[0].cotangentTangent
        let colBuffer = io.workspace.columns.pointer
        let colTangent = colBuffer + k * plane
        let dcol = io.workspace.columnCotangents.pointer
        for n in 0..<io.batch {
            let x = io.inputs[0].value + n * input.count
            let dyn = dy + n * outCount, dytn = dyt + n * outCount
            let first = n == 0
            if p.gradient != nil || p.gradientTangent != nil {
                let col = columns(of: x, into: colBuffer)
                if let g = p.gradient {
                    Scalar.gemm(transA: false, transB: true, m: outChannels, n: k, k: plane,
                                alpha: 1, a: dyn, lda: plane, b: col, ldb: plane,
                                beta: first ? 0 : 1, c: g + weight.offset, ldc: k)
                }
                if let gt = p.gradientTangent {
                    Scalar.gemm(transA: false, transB: true, m: outChannels, n: k, k: plane,
                                alpha: 1, a: dytn, lda: plane, b: col, ldb: plane,
                                beta: first ? 0 : 1, c: gt + weight.offset, ldc: k)
                    if let xt {
                        let colt = columns(of: xt + n * input.count, into: colTangent)
                        Scalar.gemm(transA: false, transB: true, m: outChannels, n: k, k: plane,
                                    alpha: 1, a: dyn, lda: plane, b: colt, ldb: plane,
                                    beta: 1, c: gt + weight.offset, ldc: k)
                    }
                }
            }
            if let dx {
                inputCotangent(w: w, dy: dyn, dx: dx + n * input.count, dcol: dcol,
                               accumulate: io.accumulate[0])
            }
            if let dxt {
                let target = dxt + n * input.count
                if kernel == 1 {
                    Scalar.gemm(transA: true, transB: false, m: k, n: plane, k: outChannels,
                                alpha: 1, a: w, lda: k, b: dytn, ldb: plane,
                                beta: io.accumulate[0] ? 1 : 0, c: target, ldc: plane)
                    Scalar.gemm(transA: true, transB: false, m: k, n: plane, k: outChannels,
                                alpha: 1, a: wt, lda: k, b: dyn, ldb: plane,
                                beta: 1, c: target, ldc: plane)
                } else {
                    Scalar.gemm(transA: true, transB: false, m: k, n: plane, k: outChannels,
                                alpha: 1, a: w, lda: k, b: dytn, ldb: plane,
                                beta: 0, c: dcol, ldc: plane)
                    Scalar.gemm(transA: true, transB: false, m: k, n: plane, k: outChannels,
                                alpha: 1, a: wt, lda: k, b: dyn, ldb: plane,
                                beta: 1, c: dcol, ldc: plane)
                    if !io.accumulate[0] { target.update(repeating: 0, count: input.count) }
                    col2imAdd(dcol, rowStride: plane, channels: input.channels,
                              height: input.height, width: input.width, kernel: kernel, into: target)
                }
            }
        }
        if let bias {
            if let g = p.gradient { biasGradient(dy, batch: io.batch, into: g + bias.offset) }
            if let gt = p.gradientTangent { biasGradient(dyt, batch: io.batch, into: gt + bias.offset) }
        }
    }
}
