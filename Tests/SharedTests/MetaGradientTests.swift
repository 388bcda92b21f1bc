import Core
import Engine
import MetaLearning
import RealModule
import Testing
import TestSupport

/// The meta-gradient against central finite differences of the whole MAML objective, in
/// Float64, on a small U-Net with a large inner rate so the second-order terms are large.
@Suite struct MetaGradientTests {
    static func config(order: MetaOrder, learnedRates: Bool = false, multiStep: Bool = false) -> MetaConfig {
        var c = MetaConfig(model: UNetConfig(height: 8, width: 8, depth: 1, baseChannels: 4, groups: 2).spec)
        c.supportShots = 2
        c.queryShots = 2
        c.innerSteps = 3
        c.innerLearningRate = 0.5
        c.order = order
        c.learnedInnerRates = learnedRates
        c.multiStepLoss = multiStep
        c.multiStepAnnealSteps = 10
        return c
    }

    static func task(seed: UInt64) -> TaskSample {
        var rng = RandomStream(seed: seed)
        let shape = FeatureShape(channels: 1, height: 8, width: 8)
        func masks(_ n: Int) -> [Float] { (0..<(n * 64)).map { _ in rng.chance(0.35) ? 1 : 0 } }
        let sm = masks(2), qm = masks(2)
        return TaskSample(
            shape: shape,
            supportImages: sm.map { $0 + Float(rng.normal()) * 0.7 },
            supportMasks: sm,
            queryImages: qm.map { $0 + Float(rng.normal()) * 0.7 },
            queryMasks: qm)
    }

    /// Max relative error of the analytic meta-gradient along random directions and on the
    /// learned rates, against central differences of the objective.
    func finiteDifferenceError(_ config: MetaConfig, step: Int = 0, analyticOrder: MetaOrder? = nil, taskSeed: UInt64 = 3) throws -> Double {
        var analyticConfig = config
        if let o = analyticOrder { analyticConfig.order = o }
        let learner = try MetaLearner<Double>(config: analyticConfig)
        let reference = try MetaLearner<Double>(config: config)
        let layout = learner.layout
        var meta = layout.initialValues(seed: 9, innerLearningRate: config.innerLearningRate).map { Double($0) }
        var rng = RandomStream(seed: 77)
        for e in layout.model.entries where e.shape.count == 1 {
            for i in e.range { meta[i] += Double(rng.uniform(-0.3, 0.3)) }
        }
        if layout.learnedRates {
            for i in layout.model.count..<layout.count { meta[i] = Double(rng.uniform(0.2, 0.6)) }
        }
        let task = Self.task(seed: taskSeed)
        var grad = [Double](repeating: 0, count: layout.count)
        _ = learner.metaGradient(meta: meta, task: task, step: step, into: &grad)
        func objective(_ m: [Double]) -> Double { reference.objective(meta: m, task: task, step: step) }
        // With inner steps this large the objective is only piecewise smooth (ReLU and
        // max-pool switch), so a step can straddle a kink; it cannot spoil both step sizes.
        func numeric(_ d: [Double], _ h: Double) -> Double {
            let plus = zip(meta, d).map { $0 + h * $1 }, minus = zip(meta, d).map { $0 - h * $1 }
            return (objective(plus) - objective(minus)) / (2 * h)
        }
        var worst = 0.0
        var directions: [[Double]] = (0..<6).map { _ in (0..<layout.count).map { _ in rng.normal() } }
        // Each learned rate on its own as well.
        for i in layout.model.count..<layout.count {
            var d = [Double](repeating: 0, count: layout.count)
            d[i] = 1
            directions.append(d)
        }
        for d in directions {
            let analytic = zip(grad, d).reduce(0) { $0 + $1.0 * $1.1 }
            let error = [1e-6, 1e-7].map { h in
                let n = numeric(d, h)
                // Relative, with an absolute floor: a single rate's derivative can be ~1e-6,
                // below what differences of an O(1) objective resolve in Float64.
                return abs(analytic - n) / max(abs(n), 1e-3)
            }.min()!
            worst = max(worst, error)
        }
        return worst
    }

    @Test func secondOrderMatchesFiniteDifferences() throws {
        let err = try finiteDifferenceError(Self.config(order: .second))
        #expect(err < 1e-5, "relative error \(err)")
    }

    @Test func firstOrderIsNotTheExactGradient() throws {
        // The same check must fail for FOMAML, or it could not tell the two apart.
        let err = try finiteDifferenceError(Self.config(order: .second), analyticOrder: .first)
        #expect(err > 1e-2, "first order unexpectedly exact: \(err)")
    }

    @Test func learnedInnerRatesMatchFiniteDifferences() throws {
        let err = try finiteDifferenceError(Self.config(order: .second, learnedRates: true))
        #expect(err < 1e-5, "relative error \(err)")
    }

    @Test func multiStepLossMatchesFiniteDifferences() throws {
        let err = try finiteDifferenceError(Self.config(order: .second, learnedRates: true, multiStep: true), step: 4)
        #expect(err < 1e-5, "relative error \(err)")
    }

    static func headOnly(order: MetaOrder, multiStep: Bool = false) -> MetaConfig {
        var c = config(order: order, multiStep: multiStep)
        c.headOnlyInnerLoop = true
        return c
    }

    @Test func headOnlyInnerLoopMatchesFiniteDifferences() throws {
        // The objective runs the general inner loop with the body's rates at zero; the
        // meta-gradient runs on the body's features: two computations of one function.
        let err = try finiteDifferenceError(Self.headOnly(order: .second))
        #expect(err < 1e-5, "relative error \(err)")
        let multi = try finiteDifferenceError(Self.headOnly(order: .second, multiStep: true), step: 4)
        #expect(multi < 1e-5, "relative error \(multi)")
        // The check tells first order apart here too.
        let first = try finiteDifferenceError(Self.headOnly(order: .second), analyticOrder: .first)
        #expect(first > 1e-2, "first order unexpectedly exact: \(first)")
    }

    /// The features path against the general path (full passes, the body's rates at zero),
    /// for both orders, with and without the multi-step loss, and for adaptation; from the
    /// meta-learned head and from the prototype head (Proto-ANIL).
    @Test(arguments: [false, true]) func headOnlyFeaturesPathMatchesTheGeneralPath(prototypeHead: Bool) throws {
        func headOnly(order: MetaOrder, multiStep: Bool = false) -> MetaConfig {
            var c = Self.headOnly(order: order, multiStep: multiStep)
            c.prototypeHead = prototypeHead
            return c
        }
        for (order, multi) in [(MetaOrder.second, false), (.second, true), (.first, false), (.first, true)] {
            let c = headOnly(order: order, multiStep: multi)
            let fast = try MetaLearner<Double>(config: c)
            let general = try MetaLearner<Double>(config: c)
            general.usesHeadFeatures = false
            var rng = RandomStream(seed: 5)
            let meta = fast.layout.initialValues(seed: 3, innerLearningRate: c.innerLearningRate).map { Double($0) + Double(rng.uniform(-0.1, 0.1)) }
            let task = Self.task(seed: 8)
            var a = [Double](repeating: 0, count: meta.count), b = a
            let sa = fast.metaGradient(meta: meta, task: task, step: 2, into: &a)
            let sb = general.metaGradient(meta: meta, task: task, step: 2, into: &b)
            let scale = b.map(abs).max()!
            let worst = zip(a, b).map { abs($0 - $1) }.max()! / scale
            #expect(worst < 1e-10, "\(order) multi-step \(multi): relative difference \(worst)")
            #expect(abs(sa.objective - sb.objective) < 1e-6 && abs(sa.supportLoss - sb.supportLoss) < 1e-6
                    && abs(sa.queryLoss - sb.queryLoss) < 1e-6)
            // The body's part is not zero: the outer loop learns it.
            let head = c.model.headRange(fast.layout.model)
            #expect(a[0..<head.lowerBound].contains { $0 != 0 })
        }
        let c = headOnly(order: .second)
        let fast = try MetaLearner<Double>(config: c)
        let general = try MetaLearner<Double>(config: c)
        general.usesHeadFeatures = false
        let meta = fast.layout.initialValues(seed: 4, innerLearningRate: 0.5).map { Double($0) }
        let task = Self.task(seed: 9)
        let x = fast.adapt(meta: meta, supportImages: task.supportImages, supportMasks: task.supportMasks, checkpoints: [7, 0, 3])
        let y = general.adapt(meta: meta, supportImages: task.supportImages, supportMasks: task.supportMasks, checkpoints: [7, 0, 3])
        let head = c.model.headRange(fast.layout.model)
        for (p, q) in zip(x, y) {
            #expect(zip(p, q).allSatisfy { abs($0 - $1) < 1e-12 })
            #expect(p[0..<head.lowerBound] == meta[0..<head.lowerBound])
        }
        // Checkpoint 0 is the meta-learned head, or the prototype head added to it.
        #expect((x[1] == meta) != prototypeHead && x[0] != x[2])
    }

    /// The same in Float32, where the convolutions run on oneDNN's primitives and the body's
    /// support pass is replayed from the loop's tape: the body never moves in a head-only
    /// inner loop, so both paths cross the same ReLU and max-pool kinks and differ only by
    /// the head's rounding.
    @Test func headOnlyFeaturesPathMatchesTheGeneralPathInFloat32() throws {
        for order in [MetaOrder.second, .first] {
            var c = Self.headOnly(order: order)
            c.model = UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 8, groups: 4).spec
            c.supportShots = 3
            c.queryShots = 4
            let fast = try MetaLearner<Float>(config: c)
            let general = try MetaLearner<Float>(config: c)
            general.usesHeadFeatures = false
            let meta = fast.layout.initialValues(seed: 6, innerLearningRate: c.innerLearningRate)
            let task = Self.task16(seed: 2, support: 3, query: 4)
            var a = [Float](repeating: 0, count: meta.count), b = a
            // Twice on the fast learner: its tape and buffers hold the first task's passes.
            _ = fast.metaGradient(meta: meta, task: Self.task16(seed: 1, support: 3, query: 4), into: &a)
            _ = fast.metaGradient(meta: meta, task: task, into: &a)
            _ = general.metaGradient(meta: meta, task: task, into: &b)
            let worst = zip(a, b).map { abs($0 - $1) }.max()! / b.map(abs).max()!
            #expect(worst < 1e-4, "\(order): relative difference \(worst)")
        }
    }

    static func task16(seed: UInt64, support: Int, query: Int) -> TaskSample {
        var rng = RandomStream(seed: seed)
        func set(_ n: Int) -> (images: [Float], masks: [Float]) {
            let m: [Float] = (0..<(n * 256)).map { _ in rng.chance(0.5) ? 1 : 0 }
            return (m.map { $0 + Float(rng.normal()) }, m)
        }
        let s = set(support), q = set(query)
        return TaskSample(shape: FeatureShape(channels: 1, height: 16, width: 16), supportImages: s.images,
                          supportMasks: s.masks, queryImages: q.images, queryMasks: q.masks)
    }

    @Test func headOnlyInnerLoopIsValidated() {
        var c = Self.headOnly(order: .reptile)
        #expect(throws: MetaConfigError.self) { try c.validate() }
        c = Self.headOnly(order: .second)
        c.learnedInnerRates = true
        #expect(throws: MetaConfigError.self) { try c.validate() }
        c = Self.headOnly(order: .second)
        // A model whose last node is not a linear head.
        c.model.nodes.append(ModelSpec.Node(name: "extra", op: .relu, inputs: [c.model.nodes.count - 1]))
        #expect(throws: MetaConfigError.self) { try c.validate() }
        #expect(throws: Never.self) { try Self.headOnly(order: .first).validate() }
        // No parameter upstream of the features: nothing for the body's backward pass to
        // reach (the features node would have no cotangent buffer).
        c = Self.headOnly(order: .second)
        c.model = ModelSpec(name: "bare", input: FeatureShape(channels: 1, height: 8, width: 8), nodes: [
            .init(name: "x", op: .input, inputs: []), .init(name: "r", op: .relu, inputs: [0]),
            .init(name: "head", op: .conv2d(outChannels: 1, kernel: 1, bias: true), inputs: [1]),
        ])
        #expect(throws: MetaConfigError.self) { try c.validate() }
    }

    /// Node names arrive over the wire: a body node named like the head's tensors (`h.x`
    /// beside the head `h`) must not be taken for part of the head.
    @Test func headRangeIsTheHeadsOwnTensors() throws {
        var c = Self.headOnly(order: .second)
        let last = c.model.nodes.count - 1
        c.model.nodes[last].name = "h"
        c.model.nodes[1].name = "h.x"
        try c.validate()
        let learner = try MetaLearner<Double>(config: c)
        #expect(c.model.headRange(learner.layout.model).count == 5)  // 4 channels and a bias
        var g = [Double](repeating: 0, count: learner.layout.count)
        let meta = learner.layout.initialValues(seed: 2, innerLearningRate: 0.5).map { Double($0) }
        _ = learner.metaGradient(meta: meta, task: Self.task(seed: 3), into: &g)
        #expect(!g.contains { !$0.isFinite })
    }

    /// A support set larger than the configured shots (up to the network's capacity) runs on
    /// the features path as on the general path.
    @Test func headOnlyTakesAnySupportSizeTheNetworkHolds() throws {
        var c = Self.headOnly(order: .second)
        c.supportShots = 1
        c.queryShots = 2
        let fast = try MetaLearner<Double>(config: c)
        let general = try MetaLearner<Double>(config: c)
        general.usesHeadFeatures = false
        let meta = fast.layout.initialValues(seed: 5, innerLearningRate: 0.5).map { Double($0) }
        let task = Self.task(seed: 6)  // 2 support images
        var a = [Double](repeating: 0, count: meta.count), b = a
        _ = fast.metaGradient(meta: meta, task: task, into: &a)
        _ = general.metaGradient(meta: meta, task: task, into: &b)
        #expect(zip(a, b).map { abs($0 - $1) }.max()! / b.map(abs).max()! < 1e-10)
    }

    @Test func reptileIsThetaMinusAdapted() throws {
        let c = Self.config(order: .reptile)
        let learner = try MetaLearner<Double>(config: c)
        let meta = learner.layout.initialValues(seed: 1, innerLearningRate: 0.5).map { Double($0) }
        let task = Self.task(seed: 4)
        var g = [Double](repeating: 0, count: meta.count)
        _ = learner.metaGradient(meta: meta, task: task, into: &g)
        let adapted = learner.adapt(meta: meta, supportImages: task.supportImages, supportMasks: task.supportMasks, steps: 3)
        #expect(zip(zip(meta, adapted), g).allSatisfy { abs(($0.0 - $0.1) - $1) < 1e-15 })
    }

    @Test func multiStepWeightsAnnealTowardsTheLastStep() {
        var c = MetaConfig()
        c.innerSteps = 5
        c.multiStepLoss = true
        c.multiStepAnnealSteps = 10
        let w0 = c.lossWeights(atStep: 0), wEnd = c.lossWeights(atStep: 1000)
        #expect(w0.allSatisfy { abs($0 - 0.2) < 1e-6 })
        #expect(abs(wEnd.reduce(0, +) - 1) < 1e-5)
        #expect(wEnd.dropLast().allSatisfy { abs($0 - 0.006) < 1e-6 })
        #expect(abs(wEnd.last! - 0.976) < 1e-5)
        c.multiStepLoss = false
        #expect(c.lossWeights(atStep: 3) == [0, 0, 0, 0, 1])
    }

    @Test func derivativeOrderAnnealing() {
        var c = MetaConfig()
        c.firstOrderSteps = 3
        #expect(c.effectiveOrder(atStep: 2) == .first)
        #expect(c.effectiveOrder(atStep: 3) == .second)
    }
}
