import Core
import Engine

/// Computes meta-gradients for one task at a time: the MAML inner loop and the chosen
/// meta-gradient (exact second order, first order, or Reptile), single-threaded. With a
/// head-only inner loop (ANIL) the same meta-gradient is computed on the body's features
/// (`HeadInnerLoop`).
///
/// Exact second order, with theta_0 = theta, theta_{i+1} = theta_i - alpha_i g_i,
/// g_i = grad L_support(theta_i) and the objective sum_j w_j L_query(theta_j):
///   v_k = w_k grad L_q(theta_k)
///   v_i = v_{i+1} - H_i (alpha_i v_{i+1}) + w_i grad L_q(theta_i)      (i = k-1 ... 0, w_0 = 0)
///   dL/dtheta = v_0,   dL/dalpha_i[t] = -<v_{i+1}[t], g_i[t]>
/// where H_i is the support-loss Hessian at theta_i and alpha_i is diagonal (one rate per
/// parameter tensor with LSLR). Each H_i u is an exact forward-over-reverse product. Memory
/// is bounded whatever k: theta_0 ... theta_{k-1} are kept (one parameter-sized buffer per
/// step), the first `keptSteps` steps' primal passes on tapes (one
/// `Network.tapeBytes(images:)` each; by default 2 within 256 MB, `ActivationMemory`), and
/// the other steps' activations are recomputed when the backward sweep reaches them, unlike
/// learn2learn/higher, which keep every step's graph (learn2learn #393). Replayed and
/// recomputed products have the same bits.
///
/// With a prototype head (Proto-MAML, `PrototypeHead`), theta_0 = theta + P(F_s(theta)): the
/// support set's prototype head is added to the output head first, and the meta-gradient gets
/// the prototypes' own term, one backward pass of the body on the support features:
///   dL/dtheta = v_0 + J_F^T (dP/dF)^T v_0[head],
/// in both orders (first order takes the inner steps' Jacobians as the identity, not this one).
///
/// Not thread-safe: one learner per thread. Results depend only on the inputs.
public final class MetaLearner<Scalar: EngineScalar> {
    public let config: MetaConfig
    public let layout: MetaLayout
    public let network: Network<Scalar>
    private let n: Int
    /// theta_0 ... theta_{k-1} (second order) or g_0 ... g_{k-1} (first order with LSLR).
    private var history: [Storage<Scalar>]
    private let current, gradient, v, hv, scratch: Storage<Scalar>
    /// How many inner steps' primal passes the second-order meta-gradient keeps.
    public let keptSteps: Int
    /// The kept steps' passes, and their support gradients g_i when the rates are learned
    /// (made on the first second-order meta-gradient).
    private var tapes: [Network<Scalar>.Tape] = []
    /// The support images the tapes hold (the configured shots, or a larger task's).
    private var tapeImages = 0
    private var keptGradients: [Storage<Scalar>] = []
    /// With a head-only inner loop: the model offset where the head's tensors start, and the
    /// loop on the body's features.
    private let headStart: Int
    private let headLoop: HeadInnerLoop<Scalar>?
    /// With a head-only inner loop, compute on the body's features (`HeadInnerLoop`), which
    /// is the default; false runs the general inner loop with the body's rates at zero, for
    /// checking one against the other.
    public var usesHeadFeatures = true
    /// With a prototype head: where the output head starts in the model layout, and the
    /// prototypes of the task in hand (set by `start`).
    private let prototypeHeadStart: Int?
    private var prototypes: PrototypeHead<Scalar>?

    /// The statistics of one meta-gradient.
    public typealias Stats = TaskStatistics

    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    /// `keptSteps` nil follows the default rule (`ActivationMemory`).
    public init(config: MetaConfig, keptSteps: Int? = ActivationMemory.requested) throws(MetaConfigError) {
        try config.validate()
        if let keptSteps, !(0...ActivationMemory.maximumKeptSteps).contains(keptSteps) {
            throw .invalid("kept steps \(keptSteps) out of range")
        }
        self.config = config
        layout = try MetaLayout(config: config)
        do {
            network = try Network<Scalar>(spec: config.model, capacity: max(config.supportShots, config.queryShots))
        } catch {
            throw .invalid("\(error)")
        }
        self.keptSteps = ActivationMemory.keptSteps(requested: keptSteps, tapeBytes: network.tapeBytes(images: config.supportShots),
                                                    innerSteps: config.innerSteps)
        let n = layout.model.count
        self.n = n
        history = (0..<config.innerSteps).map { _ in Storage(count: n) }
        current = Storage(count: n)
        gradient = Storage(count: n)
        v = Storage(count: n)
        hv = Storage(count: n)
        scratch = Storage(count: n)
        headStart = config.headOnlyInnerLoop ? config.model.headRange(layout.model).lowerBound : 0
        headLoop = config.headOnlyInnerLoop
            ? HeadInnerLoop(network: network, supportShots: config.supportShots, steps: config.innerSteps,
                            prototypeHead: config.prototypeHead) : nil
        prototypeHeadStart = config.prototypeHead ? config.model.headRange(layout.model).lowerBound : nil
    }

    /// theta_0 in `current`: the model part of `meta`, plus the support set's prototype head
    /// with a prototype head.
    private func start(_ meta: UnsafePointer<Scalar>, _ task: Batch) {
        current.pointer.update(from: meta, count: n)
        guard prototypeHeadStart != nil else { return }
        prototypes = network.addPrototypeHead(parameters: current.pointer, images: task.supportImages,
                                              masks: task.supportMasks, batch: task.supportCount)
    }

    /// Adds the prototypes' term J_F^T (dP/dF)^T v[head] to the body's part of `out`, where
    /// `v` = dL/dtheta_0 (no-op without a prototype head).
    private func addPrototypeTerm(_ meta: UnsafePointer<Scalar>, _ task: Batch, headCotangent v: UnsafePointer<Scalar>,
                                  into out: UnsafeMutablePointer<Scalar>) {
        guard let head = prototypeHeadStart, let prototypes, prototypes.isDefined,
              let f = config.model.headFeatures else { return }
        let ns = task.supportCount, plane = network.shapes[f].plane
        let cotangent = Storage<Scalar>(count: ns * network.shapes[f].count)
        prototypes.backward(head: v + head, masks: task.supportMasks, batch: ns, pixels: plane, into: cotangent.pointer)
        _ = network.features(parameters: meta, images: task.supportImages, batch: ns)
        hv.pointer.update(repeating: 0, count: n)
        network.backward(parameters: meta, featureCotangent: cotangent.pointer, batch: ns, into: hv.pointer)
        for j in 0..<head { out[j] += hv.pointer[j] }
    }

    /// The inner learning rate of tensor `t` at step `i` (steps past the learned ones reuse the last).
    @inline(__always)
    func rate(_ meta: UnsafePointer<Scalar>, tensor t: Int, step i: Int) -> Scalar {
        if config.headOnlyInnerLoop && layout.model.entries[t].offset < headStart { return 0 }
        guard layout.learnedRates else { return Scalar(config.innerLearningRate) }
        return meta[layout.rateIndex(tensor: t, step: min(i, layout.steps - 1))]
    }

    /// target[t] = a[t] + scale * alpha_i[t] * b[t] for every tensor t.
    private func axpyByTensor(
        _ target: UnsafeMutablePointer<Scalar>, _ a: UnsafePointer<Scalar>, _ b: UnsafePointer<Scalar>,
        scale: Scalar, meta: UnsafePointer<Scalar>, step: Int
    ) {
        for (t, e) in layout.model.entries.enumerated() {
            let s = scale * rate(meta, tensor: t, step: step)
            for j in e.range { target[j] = a[j] + s * b[j] }
        }
    }

    private func dot(_ a: UnsafePointer<Scalar>, _ b: UnsafePointer<Scalar>, _ r: Range<Int>) -> Scalar {
        var s: Double = 0
        for j in r { s += Double(a[j]) * Double(b[j]) }
        return Scalar(s)
    }

    /// Runs `steps` inner SGD steps on the support set from the model part of `meta`,
    /// leaving theta_steps in `current`. With `keepHistory` theta_i is saved for each step,
    /// and the kept steps' passes are recorded on their tapes. Returns the support loss at
    /// theta_0.
    /// `afterStep(i)` runs with theta_i in `current`, from theta_0 (before the first step).
    @discardableResult
    private func innerLoop(_ meta: UnsafePointer<Scalar>, _ task: Batch, steps: Int, keepHistory: Bool,
                           afterStep: ((Int) -> Void)? = nil) -> Scalar {
        start(meta, task)
        afterStep?(0)
        var initialLoss: Scalar = .nan
        if keepHistory && keptSteps > 0 && (tapes.count < keptSteps || tapeImages < task.supportCount) {
            tapeImages = max(config.supportShots, task.supportCount)
            tapes = (0..<keptSteps).map { _ in network.makeTape(images: tapeImages) }
            keptGradients = layout.learnedRates ? (0..<keptSteps).map { _ in Storage(count: n) } : []
        }
        for i in 0..<steps {
            let tape = keepHistory && i < keptSteps ? tapes[i] : nil
            let value = network.gradient(
                parameters: current.pointer, images: task.supportImages, masks: task.supportMasks,
                batch: task.supportCount, into: gradient.pointer, recordingInto: tape)
            if i == 0 { initialLoss = value.total }
            if tape != nil && layout.learnedRates { keptGradients[i].pointer.update(from: gradient.pointer, count: n) }
            if keepHistory { history[i].pointer.update(from: current.pointer, count: n) }
            axpyByTensor(current.pointer, current.pointer, gradient.pointer, scale: -1, meta: meta, step: i)
            afterStep?(i + 1)
        }
        if steps == 0 {
            initialLoss = network.lossValue(parameters: current.pointer, images: task.supportImages,
                                            masks: task.supportMasks, batch: task.supportCount).total
        }
        return initialLoss
    }

    /// Query loss and Dice at `parameters`, without gradients.
    private func score(_ parameters: UnsafePointer<Scalar>, _ task: Batch) -> (Scalar, Float) {
        let logits = network.forward(parameters: parameters, images: task.queryImages, batch: task.queryCount)
        let loss = network.loss.forward(logits: logits, masks: task.queryMasks, batch: task.queryCount)
        return (loss.total, queryDice(task))
    }

    /// Query Dice from the logits the network's last pass left, which must have been on the
    /// query images (saves a forward pass where a query gradient was just computed).
    private func queryDice(_ task: Batch) -> Float {
        Overlap.meanDice(logits: network.lastLogits, masks: task.queryMasks, images: task.queryCount, pixels: task.plane)
    }

    /// The meta-gradient of one task at the meta-parameters `meta` (layout `layout`), written
    /// to `out` (same layout). `step` is the outer step, for the MAML++ annealing schedules.
    ///
    /// - Precondition: the task has the configured shapes and shot counts.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func metaGradient(
        meta: UnsafePointer<Scalar>, task sample: TaskSample, step: Int = 0, into out: UnsafeMutablePointer<Scalar>
    ) -> Stats {
        precondition(sample.shape == config.model.input, "task shape \(sample.shape) does not match the model input")
        precondition(sample.supportCount <= network.capacity && sample.queryCount <= network.capacity,
                     "more shots than the learner was built for")
        let task = Batch(sample)
        defer { task.release() }
        let k = config.innerSteps
        let weights = config.lossWeights(atStep: step).map { Scalar($0) }
        out.update(repeating: 0, count: layout.count)
        let order = config.effectiveOrder(atStep: step)
        if let headLoop, usesHeadFeatures {
            return headLoop.metaGradient(meta, task, weights: weights, rate: Scalar(config.innerLearningRate),
                                         secondOrder: order == .second, into: out)
        }
        switch order {
        case .reptile:
            let supportLoss = innerLoop(meta, task, steps: k, keepHistory: false)
            for j in 0..<n { out[j] = meta[j] - current.pointer[j] }
            let (loss, dice) = score(current.pointer, task)
            return Stats(queryLoss: Float(loss), queryDice: dice, supportLoss: Float(supportLoss), objective: Float(loss))
        case .first:
            return firstOrder(meta, task, weights: weights, into: out)
        case .second:
            return secondOrder(meta, task, weights: weights, into: out)
        }
    }

    private func secondOrder(
        _ meta: UnsafePointer<Scalar>, _ task: Batch, weights: [Scalar], into out: UnsafeMutablePointer<Scalar>
    ) -> Stats {
        let k = config.innerSteps
        let supportLoss = innerLoop(meta, task, steps: k, keepHistory: true)
        let final = network.gradient(parameters: current.pointer, images: task.queryImages,
                                     masks: task.queryMasks, batch: task.queryCount, into: v.pointer)
        let dice = queryDice(task)
        let wk = k > 0 ? weights[k - 1] : 1
        for j in 0..<n { v.pointer[j] *= wk }
        var objective = wk * final.total
        for i in stride(from: k - 1, through: 0, by: -1) {
            let theta = history[i].pointer
            // u = alpha_i v, then H_i u (and g_i for the rate gradients).
            for (t, e) in layout.model.entries.enumerated() {
                let a = rate(meta, tensor: t, step: i)
                for j in e.range { scratch.pointer[j] = a * v.pointer[j] }
            }
            // A kept step replays its recorded pass; its g_i was kept with it.
            let kept = i < keptSteps
            let g = kept && layout.learnedRates ? keptGradients[i].pointer : gradient.pointer
            _ = network.hessianVectorProduct(
                parameters: theta, direction: scratch.pointer, images: task.supportImages,
                masks: task.supportMasks, batch: task.supportCount, into: hv.pointer,
                gradient: layout.learnedRates && !kept ? g : nil, replaying: kept ? tapes[i] : nil)
            if layout.learnedRates {
                for (t, e) in layout.model.entries.enumerated() {
                    out[layout.rateIndex(tensor: t, step: i)] = -dot(v.pointer, g, e.range)
                }
            }
            for j in 0..<n { v.pointer[j] -= hv.pointer[j] }
            if i >= 1 && weights[i - 1] != 0 {
                let value = network.gradient(parameters: theta, images: task.queryImages,
                                             masks: task.queryMasks, batch: task.queryCount, into: hv.pointer)
                let w = weights[i - 1]
                for j in 0..<n { v.pointer[j] += w * hv.pointer[j] }
                objective += w * value.total
            }
        }
        out.update(from: v.pointer, count: n)
        addPrototypeTerm(meta, task, headCotangent: v.pointer, into: out)
        return Stats(queryLoss: Float(final.total), queryDice: dice, supportLoss: Float(supportLoss),
                     objective: Float(objective))
    }

    private func firstOrder(
        _ meta: UnsafePointer<Scalar>, _ task: Batch, weights: [Scalar], into out: UnsafeMutablePointer<Scalar>
    ) -> Stats {
        // The Jacobians of the inner steps are taken as the identity: the meta-gradient is
        // sum_j w_j grad L_q(theta_j); a rate's gradient is -<sum_{j>i} w_j grad L_q(theta_j), g_i>.
        let k = config.innerSteps
        start(meta, task)
        var supportLoss: Scalar = .nan, objective: Scalar = 0, finalLoss: Scalar = .nan
        for i in 0..<k {
            let value = network.gradient(parameters: current.pointer, images: task.supportImages,
                                         masks: task.supportMasks, batch: task.supportCount, into: gradient.pointer)
            if i == 0 { supportLoss = value.total }
            if layout.learnedRates { history[i].pointer.update(from: gradient.pointer, count: n) }
            axpyByTensor(current.pointer, current.pointer, gradient.pointer, scale: -1, meta: meta, step: i)
            let w = weights[i]
            guard w != 0 else { continue }
            let q = network.gradient(parameters: current.pointer, images: task.queryImages,
                                     masks: task.queryMasks, batch: task.queryCount, into: hv.pointer)
            objective += w * q.total
            if i == k - 1 { finalLoss = q.total }
            for j in 0..<n { out[j] += w * hv.pointer[j] }
            if layout.learnedRates {
                for earlier in 0...i {
                    for (t, e) in layout.model.entries.enumerated() {
                        out[layout.rateIndex(tensor: t, step: earlier)] -= w * dot(hv.pointer, history[earlier].pointer, e.range)
                    }
                }
            }
        }
        if k == 0 {
            let q = network.gradient(parameters: current.pointer, images: task.queryImages,
                                     masks: task.queryMasks, batch: task.queryCount, into: out)
            supportLoss = network.lossValue(parameters: current.pointer, images: task.supportImages,
                                            masks: task.supportMasks, batch: task.supportCount).total
            finalLoss = q.total
            objective = q.total
        }
        // The last pass was the query gradient at theta_k, unless that step's weight is zero.
        let dice = k > 0 && weights[k - 1] != 0 ? queryDice(task) : score(current.pointer, task).1
        addPrototypeTerm(meta, task, headCotangent: out, into: out)
        return Stats(queryLoss: Float(finalLoss), queryDice: dice, supportLoss: Float(supportLoss),
                     objective: Float(objective))
    }

    /// The meta-objective sum_j w_j L_q(theta_j) alone, with no derivative: what the
    /// meta-gradient differentiates (used by finite-difference checks).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func objective(meta: UnsafePointer<Scalar>, task sample: TaskSample, step: Int = 0) -> Scalar {
        let task = Batch(sample)
        defer { task.release() }
        let weights = config.lossWeights(atStep: step).map { Scalar($0) }
        let k = config.innerSteps
        start(meta, task)
        var total: Scalar = 0
        if k == 0 {
            return network.lossValue(parameters: current.pointer, images: task.queryImages,
                                     masks: task.queryMasks, batch: task.queryCount).total
        }
        for i in 0..<k {
            _ = network.gradient(parameters: current.pointer, images: task.supportImages,
                                 masks: task.supportMasks, batch: task.supportCount, into: gradient.pointer)
            axpyByTensor(current.pointer, current.pointer, gradient.pointer, scale: -1, meta: meta, step: i)
            if weights[i] != 0 {
                total += weights[i] * network.lossValue(parameters: current.pointer, images: task.queryImages,
                                                        masks: task.queryMasks, batch: task.queryCount).total
            }
        }
        return total
    }

    // MARK: Adaptation for meta-testing

    /// Adapts the meta-parameters to a support set with `steps` inner steps (the learned
    /// rates of the last trained step are reused past it) and returns the model parameters.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func adapt(meta: [Scalar], supportImages: [Float], supportMasks: [Float], steps: Int) -> [Scalar] {
        adapt(meta: meta, supportImages: supportImages, supportMasks: supportMasks, checkpoints: [steps])[0]
    }

    /// The model parameters after each of `checkpoints` inner steps, from one run of the
    /// inner loop to the largest: step i never depends on how many follow it, so each is what
    /// `adapt(steps:)` gives for that count. Results are in the order of `checkpoints`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func adapt(meta: [Scalar], supportImages: [Float], supportMasks: [Float], checkpoints: [Int]) -> [[Scalar]] {
        precondition(meta.count == layout.count, "meta-parameter count mismatch")
        precondition(!checkpoints.isEmpty && checkpoints.allSatisfy { $0 >= 0 }, "checkpoints must be step counts")
        let count = supportImages.count / config.model.input.count
        precondition(count > 0 && count <= network.capacity, "support size out of range")
        let task = Batch(TaskSample(shape: config.model.input, supportImages: supportImages,
                                    supportMasks: supportMasks, queryImages: [], queryMasks: []))
        defer { task.release() }
        var out = [[Scalar]](repeating: [], count: checkpoints.count)
        func keep(_ step: Int) {
            for (c, k) in checkpoints.enumerated() where k == step { out[c] = Array(current.buffer) }
        }
        if let headLoop, usesHeadFeatures {
            return meta.withUnsafeBufferPointer {
                headLoop.adapt($0.baseAddress!, task, rate: Scalar(config.innerLearningRate), checkpoints: checkpoints)
            }
        }
        meta.withUnsafeBufferPointer {
            _ = innerLoop($0.baseAddress!, task, steps: checkpoints.max()!, keepHistory: false, afterStep: keep)
        }
        return out
    }

    /// A task sample converted to the learner's scalar type, in buffers the network reads.
    struct Batch {
        let supportImages, supportMasks, queryImages, queryMasks: UnsafeMutablePointer<Scalar>
        let supportCount, queryCount, plane: Int

        init(_ s: TaskSample) {
            func copy(_ a: [Float]) -> UnsafeMutablePointer<Scalar> {
                let p = UnsafeMutablePointer<Scalar>.allocate(capacity: max(a.count, 1))
                for (i, x) in a.enumerated() { p[i] = Scalar(x) }
                return p
            }
            supportImages = copy(s.supportImages)
            supportMasks = copy(s.supportMasks)
            queryImages = copy(s.queryImages)
            queryMasks = copy(s.queryMasks)
            supportCount = s.supportCount
            queryCount = s.queryImages.isEmpty ? 0 : s.queryCount
            plane = s.shape.plane
        }

        func release() {
            for p in [supportImages, supportMasks, queryImages, queryMasks] { p.deallocate() }
        }
    }
}
