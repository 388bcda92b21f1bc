import Engine

/// The prototype head of Proto-MAML (Triantafillou et al., "Meta-Dataset", ICLR 2020, section
/// 4), for a one-logit output head z = w . F + b on the features F [n, C, P] it reads.
///
/// The classifier by squared distance to the support set's class means,
///   z = -|F - c1|^2 + |F - c0|^2 = 2 (c1 - c0) . F + |c0|^2 - |c1|^2,
/// with c1 and c0 the mean features over foreground and background pixels (each pixel
/// weighted by its mask value m and 1 - m), is itself a linear head:
///   w = 2 (c1 - c0),   b = |c0|^2 - |c1|^2.
/// Proto-MAML adds it to the meta-learned head before the inner loop, so every task starts
/// from a head that already separates its own structure from the rest. On tasks that label
/// different structures in the same images, no single initial head can (that is the label
/// conflict the per-task-heads transfer baseline removes); the prototypes are read from the
/// task's own support masks.
///
/// Its derivative, for a cotangent (v_w, v_b) on the head:
///   dL/dF[b, c, p] = 2 v_w[c] (m/n1 - (1 - m)/n0) + 2 v_b (c0[c] (1 - m)/n0 - c1[c] m/n1),
/// with n1 = sum m and n0 = sum (1 - m). When either class has no pixel the prototype is
/// undefined: the offset is zero (the meta-learned head alone) and so is its derivative.
public struct PrototypeHead<Scalar: EngineScalar> {
    /// The class means [C] and the class weights n1, n0.
    let foreground, background: [Double]
    let foregroundWeight, backgroundWeight: Double

    /// The class means of `features` [batch, C, pixels] under `masks` [batch, pixels].
    public init(features: UnsafePointer<Scalar>, masks: UnsafePointer<Scalar>, batch: Int, channels: Int, pixels: Int) {
        var n1 = 0.0
        for j in 0..<(batch * pixels) { n1 += Double(masks[j]) }
        var c1 = [Double](repeating: 0, count: channels), c0 = c1
        for b in 0..<batch {
            let m = masks + b * pixels
            for c in 0..<channels {
                let f = features + (b * channels + c) * pixels
                var s1 = 0.0, s = 0.0
                for p in 0..<pixels {
                    let x = Double(f[p])
                    s1 += Double(m[p]) * x
                    s += x
                }
                c1[c] += s1
                c0[c] += s - s1
            }
        }
        let n0 = Double(batch * pixels) - n1
        foregroundWeight = n1
        backgroundWeight = n0
        foreground = c1.map { $0 / max(n1, .leastNonzeroMagnitude) }
        background = c0.map { $0 / max(n0, .leastNonzeroMagnitude) }
    }

    /// Whether both classes have pixels (otherwise the offset and its derivative are zero).
    /// Half a pixel's weight at least, so that rounding in soft masks does not divide by ~0.
    public var isDefined: Bool { foregroundWeight >= 0.5 && backgroundWeight >= 0.5 }

    /// Adds the prototype head (w, b) to `head` [C + 1].
    public func add(to head: UnsafeMutablePointer<Scalar>) {
        guard isDefined else { return }
        var bias = 0.0
        for c in foreground.indices {
            head[c] += Scalar(2 * (foreground[c] - background[c]))
            bias += background[c] * background[c] - foreground[c] * foreground[c]
        }
        head[foreground.count] += Scalar(bias)
    }

    /// The cotangent of the features [batch, C, pixels] for a cotangent `head` [C + 1] on the
    /// prototype head (the derivative above), added to `cotangent`.
    public func backward(head v: UnsafePointer<Scalar>, masks: UnsafePointer<Scalar>, batch: Int, pixels: Int,
                         into cotangent: UnsafeMutablePointer<Scalar>) {
        let channels = foreground.count
        guard isDefined else { return }
        let n1 = foregroundWeight, n0 = backgroundWeight, vb = Double(v[channels])
        for c in 0..<channels {
            // dL/dF = m * (2 v_w/n1 - 2 v_b c1/n1) + (1 - m) * (-2 v_w/n0 + 2 v_b c0/n0).
            let a1 = 2 * (Double(v[c]) - vb * foreground[c]) / n1
            let a0 = 2 * (vb * background[c] - Double(v[c])) / n0
            for b in 0..<batch {
                let m = masks + b * pixels, out = cotangent + (b * channels + c) * pixels
                for p in 0..<pixels {
                    let mp = Double(m[p])
                    out[p] += Scalar(mp * a1 + (1 - mp) * a0)
                }
            }
        }
    }
}

extension Network {
    /// Adds the prototype head of the support set (`PrototypeHead`) to the output head of
    /// `parameters`, from the features at those parameters; returns the prototypes for the
    /// backward pass. The network's own buffers hold the support pass afterwards.
    ///
    /// - Precondition: the model has a linear output head (`ModelSpec.headFeatures`).
    @discardableResult
    public func addPrototypeHead(parameters: UnsafeMutablePointer<Scalar>, images: UnsafePointer<Scalar>,
                                 masks: UnsafePointer<Scalar>, batch: Int) -> PrototypeHead<Scalar> {
        guard let f = spec.headFeatures else { preconditionFailure("the model has no linear output head") }
        let features = features(parameters: parameters, images: images, batch: batch)
        let prototypes = PrototypeHead(features: features, masks: masks, batch: batch,
                                       channels: shapes[f].channels, pixels: shapes[f].plane)
        prototypes.add(to: parameters + spec.headRange(layout).lowerBound)
        return prototypes
    }
}
