import Core

/// Group normalisation with a per-channel affine map (Wu & He, 2018), as `torch.nn.GroupNorm`.
///
/// For each sample and group of C/G channels (m = (C/G)*H*W elements):
///   mu = mean(x), r = 1 / sqrt(mean((x - mu)^2) + eps), x-hat = (x - mu) r,
///   y = gamma_c x-hat + beta_c.
/// Derivatives, with dh = gamma_c y-bar and means taken over the group:
///   x-bar = r (dh - mean(dh) - x-hat mean(dh x-hat))
///   x-hat-dot = r (x-dot - mean(x-dot) - x-hat t),  t = mean(x-hat x-dot),  r-dot = -r^2 t
///   x-bar-dot = r-dot (dh - a - x-hat b) + r (dh-dot - a-dot - x-hat-dot b - x-hat b-dot)
/// where a = mean(dh), b = mean(dh x-hat), dh-dot = gamma-dot_c y-bar + gamma_c y-bar-dot, and
/// a-dot, b-dot are their tangents. The normalisation Jacobian is symmetric, which is why the
/// tangent and cotangent rules share their form.
///
/// With `fusedReLU` the layer computes relu(GroupNorm(x)) in the same passes (the network
/// fuses a ReLU that is the only consumer of a GroupNorm): the output is clamped, and incoming
/// cotangents, tangents and cotangent tangents are masked by [y > 0], which saves the
/// ReLU's own passes over memory.
public struct GroupNorm<Scalar: EngineScalar>: Layer {
    let shape: FeatureShape
    let groups: Int
    let epsilon: Scalar
    let fusedReLU: Bool
    let gamma: ParameterSpec
    let beta: ParameterSpec
    /// Per (sample, group) of the tangent pass: mean(x-dot), mean(x-hat x-dot). The primal
    /// mean and 1/std are the saved state (`io.state`).
    private let tangentStats: Storage<Scalar>
    private let capacity: Int

    init(shape: FeatureShape, groups: Int, epsilon: Double, gamma: ParameterSpec,
         beta: ParameterSpec, capacity: Int, fusedReLU: Bool) {
        self.fusedReLU = fusedReLU
        self.shape = shape
        self.groups = groups
        self.epsilon = Scalar(epsilon)
        self.gamma = gamma
        self.beta = beta
        self.capacity = capacity
        tangentStats = Storage(count: 2 * capacity * groups)
    }

    public var parameterSpecs: [ParameterSpec] { [gamma, beta] }

    private var channelsPerGroup: Int { shape.channels / groups }
    private var groupCount: Int { channelsPerGroup * shape.plane }
    public var stateBytes: Int { 2 * capacity * groups * MemoryLayout<Scalar>.stride }

    /// The saved per-(sample, group) mean and 1/std of the forward pass.
    @inline(__always)
    private func statistics(_ io: LayerIO<Scalar>) -> (mean: UnsafeMutablePointer<Scalar>, rstd: UnsafeMutablePointer<Scalar>) {
        let p = io.state!.bindMemory(to: Scalar.self, capacity: 2 * capacity * groups)
        return (p, p + capacity * groups)
    }
    private var tangentMean: UnsafeMutablePointer<Scalar> { tangentStats.pointer }
    private var tangentCorrelation: UnsafeMutablePointer<Scalar> { tangentStats.pointer + capacity * groups }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let gw = p.values + gamma.offset, gb = p.values + beta.offset
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        let (mean, rstd) = statistics(io)
        for n in 0..<io.batch {
            for g in 0..<groups {
                let base = n * shape.count + g * m
                let x = io.inputs[0].value + base, y = io.output.value + base
                let mu = sum(x, m) * invM
                let q = sumOfSquares(x, m, shift: mu)
                let r = 1 / (q * invM + epsilon).squareRoot()
                mean[n * groups + g] = mu
                rstd[n * groups + g] = r
                for cl in 0..<channelsPerGroup {
                    let c = g * channelsPerGroup + cl
                    let scale = gw[c] * r, shift = gb[c] - mu * scale
                    let xc = x + cl * plane, yc = y + cl * plane
                    if fusedReLU {
                        for i in 0..<plane { yc[i] = max(xc[i] * scale + shift, 0) }
                    } else {
                        for i in 0..<plane { yc[i] = xc[i] * scale + shift }
                    }
                }
            }
        }
    }

    /// With a fused ReLU, masks an output cotangent (or its tangent) in place by [y > 0]:
    /// this layer's passes read the masked values, so they can replace the incoming ones
    /// (the tangent pass then reads the masked cotangent the backward pass left).
    /// (Masks multiply by 0 or 1: LLVM turns a select that keeps the old value into a
    /// conditional store, which it does not vectorise.)
    @inline(__always)
    private func maskByOutput(_ d: UnsafeMutablePointer<Scalar>, _ io: LayerIO<Scalar>) {
        guard fusedReLU else { return }
        let y = io.output.value, count = io.batch * shape.count
        for i in 0..<count { d[i] *= y[i] > 0 ? 1 : 0 }
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dyAll = io.output.cotangent else { return }
        maskByOutput(dyAll, io)
        let gw = p.values + gamma.offset
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        let (mean, rstd) = statistics(io)
        if let g = p.gradient {
            (g + gamma.offset).update(repeating: 0, count: shape.channels)
            (g + beta.offset).update(repeating: 0, count: shape.channels)
        }
        for n in 0..<io.batch {
            for grp in 0..<groups {
                let base = n * shape.count + grp * m
                let x = io.inputs[0].value + base, dy = dyAll + base
                let mu = mean[n * groups + grp], r = rstd[n * groups + grp]
                var a: Scalar = 0, b: Scalar = 0
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    var (sdy, sdyx) = sumAndCenteredDot(dy + cl * plane, x + cl * plane, plane, shift: mu)
                    sdyx *= r
                    if let g = p.gradient {
                        g[gamma.offset + c] += sdyx
                        g[beta.offset + c] += sdy
                    }
                    a += gw[c] * sdy
                    b += gw[c] * sdyx
                }
                a *= invM
                b *= invM
                guard let dxAll = io.inputs[0].cotangent else { continue }
                let dx = dxAll + base
                let acc = io.accumulate[0]
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    let xc = x + cl * plane, dyc = dy + cl * plane, dxc = dx + cl * plane
                    let gr = gw[c] * r, br = b * r, ar = a * r
                    // x-bar = r (gamma dy - a - x-hat b) with x-hat = (x - mu) r.
                    if acc {
                        for i in 0..<plane { dxc[i] += gr * dyc[i] - ar - (xc[i] - mu) * r * br }
                    } else {
                        for i in 0..<plane { dxc[i] = gr * dyc[i] - ar - (xc[i] - mu) * r * br }
                    }
                }
            }
        }
    }

    public func forwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let ytAll = io.output.tangent else { return }
        let gw = p.values + gamma.offset
        let v = p.direction
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        let xtAll = io.inputs[0].tangent
        let (mean, rstd) = statistics(io)
        for n in 0..<io.batch {
            for grp in 0..<groups {
                let base = n * shape.count + grp * m
                let x = io.inputs[0].value + base, yt = ytAll + base
                let mu = mean[n * groups + grp], r = rstd[n * groups + grp]
                var md: Scalar = 0, td: Scalar = 0
                if let xtAll {
                    (md, td) = sumAndCenteredDot(xtAll + base, x, m, shift: mu)
                    md *= invM
                    td *= invM * r
                }
                tangentMean[n * groups + grp] = md
                tangentCorrelation[n * groups + grp] = td
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    let xc = x + cl * plane, ytc = yt + cl * plane
                    let gdot = v?[gamma.offset + c] ?? 0, bdot = v?[beta.offset + c] ?? 0
                    if let xtAll {
                        let xtc = xtAll + base + cl * plane
                        // y-dot = gamma-dot x-hat + gamma r (x-dot - md - x-hat td) + beta-dot
                        let gr = gw[c] * r
                        for i in 0..<plane {
                            let xh = (xc[i] - mu) * r
                            ytc[i] = gdot * xh + gr * (xtc[i] - md - xh * td) + bdot
                        }
                    } else {
                        for i in 0..<plane { ytc[i] = gdot * (xc[i] - mu) * r + bdot }
                    }
                    if fusedReLU {
                        let yc = io.output.value + base + cl * plane
                        for i in 0..<plane { ytc[i] *= yc[i] > 0 ? 1 : 0 }
                    }
                }
            }
        }
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dyAll = io.output.cotangent, let dytAll = io.output.cotangentTangent else { return }
        maskByOutput(dytAll, io)
        let gw = p.values + gamma.offset
        let v = p.direction
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        let xtAll = io.inputs[0].tangent
        let (mean, rstd) = statistics(io)
        if let gt = p.gradientTangent {
            (gt + gamma.offset).update(repeating: 0, count: shape.channels)
            (gt + beta.offset).update(repeating: 0, count: shape.channels)
        }
        for n in 0..<io.batch {
            for grp in 0..<groups {
                let base = n * shape.count + grp * m
                let x = io.inputs[0].value + base
                let dy = dyAll + base, dyt = dytAll + base
                let xt = xtAll.map { $0 + base }
                let k = n * groups + grp
                let mu = mean[k], r = rstd[k], md = tangentMean[k], td = tangentCorrelation[k]
                // Sums over the group: a = mean(dh), b = mean(dh xh),
                // a-dot = mean(dh-dot), b-dot = mean(dh-dot xh + dh xh-dot).
                var a: Scalar = 0, b: Scalar = 0, ad: Scalar = 0, bd: Scalar = 0
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    let off = cl * plane
                    let gdot = v?[gamma.offset + c] ?? 0
                    let (sdy, sdyx, sdyt, sdytx, sdyxt) = Self.tangentSums(
                        dy: dy + off, dyt: dyt + off, x: x + off, xt: xt.map { $0 + off },
                        count: plane, mu: mu, r: r, md: md, td: td)
                    if let gt = p.gradientTangent {
                        gt[gamma.offset + c] += sdytx + sdyxt
                        gt[beta.offset + c] += sdyt
                    }
                    a += gw[c] * sdy
                    b += gw[c] * sdyx
                    ad += gdot * sdy + gw[c] * sdyt
                    bd += gdot * sdyx + gw[c] * sdytx + gw[c] * sdyxt
                }
                a *= invM; b *= invM; ad *= invM; bd *= invM
                guard let dxtAll = io.inputs[0].cotangentTangent else { continue }
                let rd = -r * r * td
                let acc = io.accumulate[0]
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    let off = cl * plane
                    let gdot = v?[gamma.offset + c] ?? 0
                    let gc = gw[c]
                    Self.cotangentTangent(
                        into: dxtAll + base + off, accumulate: acc, x: x + off, xt: xt.map { $0 + off },
                        dy: dy + off, dyt: dyt + off, count: plane,
                        Coefficients(mu: mu, r: r, rd: rd, md: md, td: td, gamma: gc, gammaDot: gdot,
                                     a: a, b: b, ad: ad, bd: bd))
                }
            }
        }
    }

    /// The per-group constants of x-bar-dot.
    struct Coefficients {
        var mu, r, rd, md, td, gamma, gammaDot, a, b, ad, bd: Scalar
    }

    /// x-bar-dot (+)= rd (dh - a - xh b) + r (dh-dot - a-dot - xh-dot b - xh b-dot) over one
    /// channel, with xh = (x - mu) r, xh-dot = r (xt - md - xh td) (zero without an input
    /// tangent), dh = gamma dy and dh-dot = gamma-dot dy + gamma dyt. Eight lanes at a time,
    /// each lane the same operations in the same order as the tail, so every element has
    /// the bits of the element-by-element formula.
    @inline(__always)
    static func cotangentTangent(
        into dxt: UnsafeMutablePointer<Scalar>, accumulate: Bool, x: UnsafePointer<Scalar>,
        xt: UnsafePointer<Scalar>?, dy: UnsafePointer<Scalar>, dyt: UnsafePointer<Scalar>, count: Int,
        _ k: Coefficients
    ) {
        typealias V = SIMD8<Scalar>
        let mu = V(repeating: k.mu), r = V(repeating: k.r), rd = V(repeating: k.rd), md = V(repeating: k.md)
        let td = V(repeating: k.td), gc = V(repeating: k.gamma), gdot = V(repeating: k.gammaDot)
        let a = V(repeating: k.a), b = V(repeating: k.b), ad = V(repeating: k.ad), bd = V(repeating: k.bd)
        var i = 0
        while i + 8 <= count {
            let xh = (load8(x + i) - mu) * r
            let vdy = load8(dy + i)
            let dh = gc * vdy
            let dht = gdot * vdy + gc * load8(dyt + i)
            let value: V
            if let xt {
                let xht = r * (load8(xt + i) - md - xh * td)
                value = rd * (dh - a - xh * b) + r * (dht - ad - xht * b - xh * bd)
            } else {
                value = rd * (dh - a - xh * b) + r * (dht - ad - xh * bd)
            }
            store8(accumulate ? load8(dxt + i) + value : value, dxt + i)
            i += 8
        }
        while i < count {
            let xh = (x[i] - k.mu) * k.r
            let dh = k.gamma * dy[i]
            let dht = k.gammaDot * dy[i] + k.gamma * dyt[i]
            let value: Scalar
            if let xt {
                let xht = k.r * (xt[i] - k.md - xh * k.td)
                value = k.rd * (dh - k.a - xh * k.b) + k.r * (dht - k.ad - xht * k.b - xh * k.bd)
            } else {
                value = k.rd * (dh - k.a - xh * k.b) + k.r * (dht - k.ad - xh * k.bd)
            }
            dxt[i] = accumulate ? dxt[i] + value : value
            i += 1
        }
    }

    /// One pass over a channel: (sum dy, sum dy xh, sum dyt, sum dyt xh, sum dy xh-dot), with
    /// xh = (x - mu) r and xh-dot = r (xt - md - xh td) (zero without an input tangent).
    @inline(__always)
    static func tangentSums(
        dy: UnsafePointer<Scalar>, dyt: UnsafePointer<Scalar>, x: UnsafePointer<Scalar>,
        xt: UnsafePointer<Scalar>?, count: Int, mu: Scalar, r: Scalar, md: Scalar, td: Scalar
    ) -> (Scalar, Scalar, Scalar, Scalar, Scalar) {
        var a0 = SIMD8<Scalar>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0
        let vmu = SIMD8(repeating: mu), vr = SIMD8(repeating: r)
        let vmd = SIMD8(repeating: md), vtd = SIMD8(repeating: td)
        var i = 0
        while i + 8 <= count {
            let vdy = load8(dy + i), vdyt = load8(dyt + i)
            let xh = (load8(x + i) - vmu) * vr
            a0 += vdy
            a1 += vdy * xh
            a2 += vdyt
            a3 += vdyt * xh
            if let xt { a4 += vdy * (vr * (load8(xt + i) - vmd - xh * vtd)) }
            i += 8
        }
        var s0 = horizontalSum(a0), s1 = horizontalSum(a1), s2 = horizontalSum(a2)
        var s3 = horizontalSum(a3), s4 = horizontalSum(a4)
        while i < count {
            let xh = (x[i] - mu) * r
            s0 += dy[i]
            s1 += dy[i] * xh
            s2 += dyt[i]
            s3 += dyt[i] * xh
            if let xt { s4 += dy[i] * (r * (xt[i] - md - xh * td)) }
            i += 1
        }
        return (s0, s1, s2, s3, s4)
    }
}

/// A group normalisation node: the number of groups (dividing the channels) and epsilon.
public struct GroupNormDefinition: LayerDefinition {
    public var groups: Int
    public var epsilon: Double

    public func outputShape(inputs: [FeatureShape], node: String) throws(ModelError) -> FeatureShape {
        let x = try ModelError.single(inputs, node)
        guard groups > 0, x.channels % groups == 0, epsilon > 0, epsilon.isFinite else {
            throw .invalid("groupnorm '\(node)': \(x.channels) channels in \(groups) groups")
        }
        return x
    }

    public func parameterShapes(inputs: [FeatureShape], output: FeatureShape) -> [ParameterShape] {
        [ParameterShape("weight", [output.channels]), ParameterShape("bias", [output.channels])]
    }

    @_specialize(where S == Float)
    @_specialize(where S == Double)
    public func makeLayer<S: EngineScalar>(_ node: LayerNode) -> AnyLayer<S> {
        AnyLayer(GroupNorm<S>(shape: node.output, groups: groups, epsilon: epsilon, gamma: node.parameters[0],
                              beta: node.parameters[1], capacity: node.capacity, fusedReLU: node.fusedReLU))
    }
}
