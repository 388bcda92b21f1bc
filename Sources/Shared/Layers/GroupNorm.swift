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
public struct GroupNorm<Scalar: EngineScalar>: Layer {
    let shape: FeatureShape
    let groups: Int
    let epsilon: Scalar
    let gamma: ParameterSpec
    let beta: ParameterSpec
    /// Per (sample, group): mean, 1/std, mean(x-dot), mean(x-hat x-dot).
    private let stats: Storage<Scalar>
    private let capacity: Int

    init(shape: FeatureShape, groups: Int, epsilon: Double, gamma: ParameterSpec,
         beta: ParameterSpec, capacity: Int) {
        self.shape = shape
        self.groups = groups
        self.epsilon = Scalar(epsilon)
        self.gamma = gamma
        self.beta = beta
        self.capacity = capacity
        stats = Storage(count: 4 * capacity * groups)
    }

    public var parameterSpecs: [ParameterSpec] { [gamma, beta] }

    private var channelsPerGroup: Int { shape.channels / groups }
    private var groupCount: Int { channelsPerGroup * shape.plane }
    private var mean: UnsafeMutablePointer<Scalar> { stats.pointer }
    private var rstd: UnsafeMutablePointer<Scalar> { stats.pointer + capacity * groups }
    private var tangentMean: UnsafeMutablePointer<Scalar> { stats.pointer + 2 * capacity * groups }
    private var tangentCorrelation: UnsafeMutablePointer<Scalar> { stats.pointer + 3 * capacity * groups }

    public func forward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        let gw = p.values + gamma.offset, gb = p.values + beta.offset
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        for n in 0..<io.batch {
            for g in 0..<groups {
                let base = n * shape.count + g * m
                let x = io.inputs[0].value + base, y = io.output.value + base
                var s: Scalar = 0
                for i in 0..<m { s += x[i] }
                let mu = s * invM
                var q: Scalar = 0
                for i in 0..<m { let d = x[i] - mu; q += d * d }
                let r = 1 / (q * invM + epsilon).squareRoot()
                mean[n * groups + g] = mu
                rstd[n * groups + g] = r
                for cl in 0..<channelsPerGroup {
                    let c = g * channelsPerGroup + cl
                    let scale = gw[c] * r, shift = gb[c] - mu * scale
                    let xc = x + cl * plane, yc = y + cl * plane
                    for i in 0..<plane { yc[i] = xc[i] * scale + shift }
                }
            }
        }
    }

    public func backward(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dyAll = io.output.cotangent else { return }
        let gw = p.values + gamma.offset
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
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
                    let xc = x + cl * plane, dyc = dy + cl * plane
                    var sdy: Scalar = 0, sdyx: Scalar = 0
                    for i in 0..<plane {
                        sdy += dyc[i]
                        sdyx += dyc[i] * (xc[i] - mu)
                    }
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
        for n in 0..<io.batch {
            for grp in 0..<groups {
                let base = n * shape.count + grp * m
                let x = io.inputs[0].value + base, yt = ytAll + base
                let mu = mean[n * groups + grp], r = rstd[n * groups + grp]
                var md: Scalar = 0, td: Scalar = 0
                if let xtAll {
                    let xt = xtAll + base
                    for i in 0..<m {
                        md += xt[i]
                        td += (x[i] - mu) * xt[i]
                    }
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
                }
            }
        }
    }

    public func backwardTangent(_ io: LayerIO<Scalar>, _ p: ParameterIO<Scalar>) {
        guard let dyAll = io.output.cotangent, let dytAll = io.output.cotangentTangent else { return }
        let gw = p.values + gamma.offset
        let v = p.direction
        let m = groupCount, plane = shape.plane
        let invM = 1 / Scalar(m)
        let xtAll = io.inputs[0].tangent
        for buffer in [p.gradient, p.gradientTangent] {
            guard let g = buffer else { continue }
            (g + gamma.offset).update(repeating: 0, count: shape.channels)
            (g + beta.offset).update(repeating: 0, count: shape.channels)
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
                    var sdy: Scalar = 0, sdyx: Scalar = 0, sdyt: Scalar = 0, sdytx: Scalar = 0
                    var sdyxt: Scalar = 0
                    for i in 0..<plane {
                        let xh = (x[off + i] - mu) * r
                        let xht = xt.map { r * ($0[off + i] - md - xh * td) } ?? 0
                        sdy += dy[off + i]
                        sdyx += dy[off + i] * xh
                        sdyt += dyt[off + i]
                        sdytx += dyt[off + i] * xh
                        sdyxt += dy[off + i] * xht
                    }
                    if let g = p.gradient {
                        g[gamma.offset + c] += sdyx
                        g[beta.offset + c] += sdy
                    }
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
                let rd = -r * r * td
                let acc = io.accumulate[0]
                for cl in 0..<channelsPerGroup {
                    let c = grp * channelsPerGroup + cl
                    let off = cl * plane
                    let gdot = v?[gamma.offset + c] ?? 0
                    let gc = gw[c]
                    if let dxAll = io.inputs[0].cotangent {
                        let dx = dxAll + base + off
                        if acc {
                            for i in 0..<plane {
                                let xh = (x[off + i] - mu) * r
                                dx[i] += r * (gc * dy[off + i] - a - xh * b)
                            }
                        } else {
                            for i in 0..<plane {
                                let xh = (x[off + i] - mu) * r
                                dx[i] = r * (gc * dy[off + i] - a - xh * b)
                            }
                        }
                    }
                    if let dxtAll = io.inputs[0].cotangentTangent {
                        let dxt = dxtAll + base + off
                        for i in 0..<plane {
                            let xh = (x[off + i] - mu) * r
                            let xht = xt.map { r * ($0[off + i] - md - xh * td) } ?? 0
                            let dh = gc * dy[off + i]
                            let dht = gdot * dy[off + i] + gc * dyt[off + i]
                            let value = rd * (dh - a - xh * b) + r * (dht - ad - xht * b - xh * bd)
                            if acc { dxt[i] += value } else { dxt[i] = value }
                        }
                    }
                }
            }
        }
    }
}
