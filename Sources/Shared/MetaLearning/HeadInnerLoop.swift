import Engine

/// The head-only inner loop (ANIL) on features the body computes once per task.
///
/// The head maps the features F (the node before it, [n, C, P]) to logits pixel by pixel,
/// z = w . F + b, and only h = (w, b) moves in the inner loop: h_{i+1} = h_i - alpha g_i,
/// g_i = grad_h L_s(F_s, h_i). So the body's passes run once per set (support and query),
/// and everything else is arithmetic on C + 1 numbers and the logits. With the objective
/// sum_j l_j L_q(F_q, h_j) (l_j the multi-step loss weights) and h_i = (w_i, b_i), exact
/// second order:
///   v_k = l_k grad_h L_q(h_k),   v_i = v_{i+1} - alpha H_i v_{i+1} + l_i grad_h L_q(h_i)
///   dL/dh = v_0
///   dL/dF_q = sum_j l_j dz_q(h_j) w_j^T
///   dL/dF_s = -sum_i d/dF_s <g_i, u_i> = -sum_i (dz_i u_w^T + (L''_i t_i) w_i^T),
///             u_i = alpha v_{i+1} = (u_w, u_b),  t_i = u_w . F_s + u_b
/// where H_i u = [sum_p s_p F_p; sum_p s_p] with s = L''_i t_i (the loss's own tangent),
/// and the body's gradient is one backward pass from each feature cotangent. First order
/// drops the terms through the inner steps: dL/dh = sum_j l_j grad_h L_q(h_j), and the
/// support features get no cotangent. This is the same meta-gradient the general path
/// computes with the body's inner rates at zero (a test checks them against each other).
/// With a prototype head, h_0 = meta head + P(F_s) (`PrototypeHead`), and dL/dF_s also gets
/// the prototypes' term (dP/dF_s)^T v_0, in both orders.
final class HeadInnerLoop<Scalar: EngineScalar> {
    let network: Network<Scalar>
    /// The head's weight starts here in the model layout; its bias follows the C weights.
    let start: Int
    let channels: Int
    let pixels: Int
    private let n: Int
    private let supportShots: Int
    /// The support pass, kept for the body's backward pass: made on the first meta-gradient
    /// (adaptation needs none), for `tapeImages` images.
    private var tape: Network<Scalar>.Tape?
    private var tapeImages = 0
    private let logits, dz, tangent, second: Storage<Scalar>
    private let supportCotangent, queryCotangent: Storage<Scalar>
    private let queryGradient, supportGradient: Storage<Scalar>
    private let prototypeHead: Bool
    /// h_0 ... h_{k-1}.
    private var history: [[Scalar]]

    init(network: Network<Scalar>, supportShots: Int, steps: Int, prototypeHead: Bool = false) {
        guard let f = network.spec.headFeatures else { preconditionFailure("the model has no linear output head") }
        self.network = network
        start = network.spec.headRange(network.layout).lowerBound
        channels = network.shapes[f].channels
        pixels = network.shapes[f].plane
        precondition(network.spec.headRange(network.layout).count == channels + 1, "the head is not C weights and a bias")
        n = network.layout.count
        self.supportShots = supportShots
        let capacity = network.capacity
        logits = Storage(count: capacity * pixels)
        dz = Storage(count: capacity * pixels)
        tangent = Storage(count: capacity * pixels)
        second = Storage(count: capacity * pixels)
        supportCotangent = Storage(count: capacity * channels * pixels)
        queryCotangent = Storage(count: capacity * channels * pixels)
        queryGradient = Storage(count: n)
        supportGradient = Storage(count: n)
        self.prototypeHead = prototypeHead
        history = Array(repeating: [], count: steps)
    }

    // MARK: The head's arithmetic

    /// z[b, p] = h.b + sum_c h.w[c] F[b, c, p].
    private func head(_ features: UnsafePointer<Scalar>, _ h: UnsafePointer<Scalar>, batch: Int,
                      into z: UnsafeMutablePointer<Scalar>) {
        let c = channels, p = pixels
        for b in 0..<batch {
            let zb = z + b * p
            zb.update(repeating: h[c], count: p)
            for ch in 0..<c {
                let w = h[ch], fb = features + (b * c + ch) * p
                for j in 0..<p { zb[j] += w * fb[j] }
            }
        }
    }

    /// g += scale * [sum_{b,p} d[b, p] F[b, c, p]; sum_{b,p} d[b, p]].
    private func addGradient(_ features: UnsafePointer<Scalar>, _ d: UnsafePointer<Scalar>, batch: Int, scale: Scalar,
                             into g: UnsafeMutablePointer<Scalar>) {
        let c = channels, p = pixels
        for ch in 0..<c {
            var s: Scalar = 0
            for b in 0..<batch {
                let fb = features + (b * c + ch) * p, db = d + b * p
                for j in 0..<p { s += db[j] * fb[j] }
            }
            g[ch] += scale * s
        }
        var s: Scalar = 0
        for j in 0..<(batch * p) { s += d[j] }
        g[c] += scale * s
    }

    /// cotangent[b, c, p] += scale * d[b, p] w[c].
    private func addOuter(_ d: UnsafePointer<Scalar>, _ w: UnsafePointer<Scalar>, batch: Int, scale: Scalar,
                          into cotangent: UnsafeMutablePointer<Scalar>) {
        let c = channels, p = pixels
        for b in 0..<batch {
            let db = d + b * p
            for ch in 0..<c {
                let s = scale * w[ch], cb = cotangent + (b * c + ch) * p
                for j in 0..<p { cb[j] += s * db[j] }
            }
        }
    }

    /// The support loss at head `h` and its gradient dL/dz in `dz`.
    private func supportLoss(_ features: UnsafePointer<Scalar>, _ h: UnsafePointer<Scalar>,
                             _ task: MetaLearner<Scalar>.Batch) -> Scalar {
        head(features, h, batch: task.supportCount, into: logits.pointer)
        let value = network.loss.forward(logits: logits.pointer, masks: task.supportMasks, batch: task.supportCount)
        network.loss.backward(masks: task.supportMasks, batch: task.supportCount, into: dz.pointer)
        return value.total
    }

    /// With a prototype head, adds the support set's prototype head to `h` and returns the
    /// prototypes; nil otherwise.
    @discardableResult
    private func addPrototypes(_ support: UnsafePointer<Scalar>, _ task: MetaLearner<Scalar>.Batch,
                               to h: inout [Scalar]) -> PrototypeHead<Scalar>? {
        guard prototypeHead else { return nil }
        let prototypes = PrototypeHead(features: support, masks: task.supportMasks, batch: task.supportCount,
                                       channels: channels, pixels: pixels)
        h.withUnsafeMutableBufferPointer { prototypes.add(to: $0.baseAddress!) }
        return prototypes
    }

    // MARK: Meta-gradient

    /// A tape for a support pass over `count` images (at most the network's capacity).
    private func supportTape(_ count: Int) -> Network<Scalar>.Tape {
        if let tape, tapeImages >= count { return tape }
        tapeImages = max(count, supportShots)
        let made = network.makeTape(images: tapeImages)
        tape = made
        return made
    }

    /// The meta-gradient of one task (first or second order) at `meta` into `out`.
    func metaGradient(_ meta: UnsafePointer<Scalar>, _ task: MetaLearner<Scalar>.Batch, weights: [Scalar], rate: Scalar,
                      secondOrder: Bool, into out: UnsafeMutablePointer<Scalar>) -> TaskStatistics {
        let k = history.count, c = channels
        let tape = supportTape(task.supportCount)
        let support = network.features(parameters: meta, images: task.supportImages, batch: task.supportCount,
                                       recordingInto: tape)
        var h = Array(UnsafeBufferPointer(start: meta + start, count: c + 1))
        let prototypes = addPrototypes(support, task, to: &h)
        var g = [Scalar](repeating: 0, count: c + 1)
        var firstSupportLoss: Scalar = .nan
        for i in 0..<k {
            history[i] = h
            let value = h.withUnsafeBufferPointer { supportLoss(support, $0.baseAddress!, task) }
            if i == 0 { firstSupportLoss = value }
            for j in g.indices { g[j] = 0 }
            addGradient(support, dz.pointer, batch: task.supportCount, scale: 1, into: &g)
            for j in h.indices { h[j] -= rate * g[j] }
        }
        if k == 0 { firstSupportLoss = h.withUnsafeBufferPointer { supportLoss(support, $0.baseAddress!, task) } }

        // The query's features on the network's own buffers (the support pass stays on the tape).
        let query = network.features(parameters: meta, images: task.queryImages, batch: task.queryCount)
        let nq = task.queryCount, ns = task.supportCount
        queryCotangent.pointer.update(repeating: 0, count: nq * c * pixels)
        supportCotangent.pointer.update(repeating: 0, count: ns * c * pixels)
        var v = [Scalar](repeating: 0, count: c + 1)
        var objective: Scalar = 0
        func addQuery(_ head: [Scalar], weight: Scalar) -> Scalar {
            head.withUnsafeBufferPointer { hp in
                self.head(query, hp.baseAddress!, batch: nq, into: logits.pointer)
                let value = network.loss.forward(logits: logits.pointer, masks: task.queryMasks, batch: nq)
                network.loss.backward(masks: task.queryMasks, batch: nq, into: dz.pointer)
                addGradient(query, dz.pointer, batch: nq, scale: weight, into: &v)
                addOuter(dz.pointer, hp.baseAddress!, batch: nq, scale: weight, into: queryCotangent.pointer)
                objective += weight * value.total
                return value.total
            }
        }
        let finalLoss = addQuery(h, weight: k > 0 ? weights[k - 1] : 1)
        let dice = Overlap.meanDice(logits: logits.pointer, masks: task.queryMasks, images: nq, pixels: pixels)

        var u = [Scalar](repeating: 0, count: c + 1)
        for i in stride(from: k - 1, through: 0, by: -1) {
            if secondOrder {
                for j in u.indices { u[j] = rate * v[j] }
                history[i].withUnsafeBufferPointer { hi in
                    _ = supportLoss(support, hi.baseAddress!, task)
                    // t = u_w . F + u_b, s = L'' t.
                    u.withUnsafeBufferPointer { head(support, $0.baseAddress!, batch: ns, into: tangent.pointer) }
                    network.loss.tangent(masks: task.supportMasks, logitTangent: tangent.pointer, batch: ns,
                                         into: second.pointer)
                    addGradient(support, second.pointer, batch: ns, scale: -1, into: &v)
                    u.withUnsafeBufferPointer {
                        addOuter(dz.pointer, $0.baseAddress!, batch: ns, scale: -1, into: supportCotangent.pointer)
                    }
                    addOuter(second.pointer, hi.baseAddress!, batch: ns, scale: -1, into: supportCotangent.pointer)
                }
            }
            if i >= 1 && weights[i - 1] != 0 { _ = addQuery(history[i], weight: weights[i - 1]) }
        }

        prototypes?.backward(head: v, masks: task.supportMasks, batch: ns, pixels: pixels, into: supportCotangent.pointer)

        // The body: one backward pass per set; the query's pass is the last on the own buffers.
        network.backward(parameters: meta, featureCotangent: queryCotangent.pointer, batch: nq, into: queryGradient.pointer)
        if (secondOrder && k > 0) || prototypes?.isDefined == true {
            network.backward(parameters: meta, featureCotangent: supportCotangent.pointer, batch: ns,
                             into: supportGradient.pointer, replaying: tape)
            for j in 0..<start { out[j] = queryGradient.pointer[j] + supportGradient.pointer[j] }
        } else {
            out.update(from: queryGradient.pointer, count: start)
        }
        for j in 0...c { out[start + j] = v[j] }
        return TaskStatistics(queryLoss: Float(finalLoss), queryDice: dice, supportLoss: Float(firstSupportLoss),
                              objective: Float(objective))
    }

    // MARK: Adaptation

    /// The model parameters after each of `checkpoints` head-only inner steps (`rate`), in the
    /// order of `checkpoints`: the body's features once, then the head's steps.
    func adapt(_ meta: UnsafePointer<Scalar>, _ task: MetaLearner<Scalar>.Batch, rate: Scalar, checkpoints: [Int]) -> [[Scalar]] {
        let c = channels
        let support = network.features(parameters: meta, images: task.supportImages, batch: task.supportCount)
        var h = Array(UnsafeBufferPointer(start: meta + start, count: c + 1))
        addPrototypes(support, task, to: &h)
        var g = [Scalar](repeating: 0, count: c + 1)
        var parameters = Array(UnsafeBufferPointer(start: meta, count: n))
        var out = [[Scalar]](repeating: [], count: checkpoints.count)
        func keep(_ step: Int) {
            guard checkpoints.contains(step) else { return }
            parameters.replaceSubrange(start..<(start + c + 1), with: h)
            for (index, k) in checkpoints.enumerated() where k == step { out[index] = parameters }
        }
        keep(0)
        for i in 0..<(checkpoints.max() ?? 0) {
            _ = h.withUnsafeBufferPointer { supportLoss(support, $0.baseAddress!, task) }
            for j in g.indices { g[j] = 0 }
            addGradient(support, dz.pointer, batch: task.supportCount, scale: 1, into: &g)
            for j in h.indices { h[j] -= rate * g[j] }
            keep(i + 1)
        }
        return out
    }
}
