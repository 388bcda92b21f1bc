import Core
import Engine
import Evaluation
import MetaLearning
import Testing
import TestSupport

/// Proto-MAML's prototype head: its derivative against finite differences, the whole
/// meta-gradient through it against finite differences of the MAML objective, and the one
/// theta_0 that meta-training, adaptation and fine-tuning all start from.
@Suite struct PrototypeHeadTests {
    static func config(order: MetaOrder = .second, learnedRates: Bool = false, multiStep: Bool = false) -> MetaConfig {
        var c = MetaGradientTests.config(order: order, learnedRates: learnedRates, multiStep: multiStep)
        c.prototypeHead = true
        return c
    }

    /// Features, masks and a head cotangent of one small support set.
    static func sample(channels: Int, pixels: Int, batch: Int, seed: UInt64) -> (features: [Double], masks: [Double], v: [Double]) {
        var rng = RandomStream(seed: seed)
        let features = (0..<(batch * channels * pixels)).map { _ in rng.normal() }
        let masks: [Double] = (0..<(batch * pixels)).map { _ in rng.chance(0.3) ? 1 : 0 }
        let v = (0...channels).map { _ in rng.normal() }
        return (features, masks, v)
    }

    /// <v, P(F)>, the scalar whose gradient `backward` computes.
    static func projected(_ f: [Double], masks: [Double], v: [Double], channels: Int, pixels: Int, batch: Int) -> Double {
        let p = PrototypeHead<Double>(features: f, masks: masks, batch: batch, channels: channels, pixels: pixels)
        var head = [Double](repeating: 0, count: channels + 1)
        p.add(to: &head)
        return zip(head, v).reduce(0) { $0 + $1.0 * $1.1 }
    }

    @Test func backwardMatchesFiniteDifferences() {
        let (c, p, b) = (3, 10, 2)
        let (f, m, v) = Self.sample(channels: c, pixels: p, batch: b, seed: 4)
        let prototypes = PrototypeHead<Double>(features: f, masks: m, batch: b, channels: c, pixels: p)
        var cotangent = [Double](repeating: 0, count: f.count)
        prototypes.backward(head: v, masks: m, batch: b, pixels: p, into: &cotangent)
        var worst = 0.0
        for i in f.indices {
            var plus = f, minus = f
            plus[i] += 1e-6
            minus[i] -= 1e-6
            let numeric = (Self.projected(plus, masks: m, v: v, channels: c, pixels: p, batch: b)
                - Self.projected(minus, masks: m, v: v, channels: c, pixels: p, batch: b)) / 2e-6
            worst = max(worst, abs(numeric - cotangent[i]))
        }
        #expect(worst < 1e-7, "largest error \(worst)")
        #expect(cotangent.contains { abs($0) > 1e-3 })
    }

    /// The classifier it stands for: -|F - c1|^2 + |F - c0|^2 at every pixel.
    @Test func itIsTheNearestMeanClassifier() {
        let (c, p, b) = (4, 12, 2)
        let (f, m, _) = Self.sample(channels: c, pixels: p, batch: b, seed: 8)
        let prototypes = PrototypeHead<Double>(features: f, masks: m, batch: b, channels: c, pixels: p)
        var head = [Double](repeating: 0, count: c + 1)
        prototypes.add(to: &head)
        func mean(_ weight: (Double) -> Double, _ ch: Int) -> Double {
            var s = 0.0, n = 0.0
            for i in 0..<b { for j in 0..<p { s += weight(m[i * p + j]) * f[(i * c + ch) * p + j]; n += weight(m[i * p + j]) } }
            return s / n
        }
        let c1 = (0..<c).map { mean({ $0 }, $0) }, c0 = (0..<c).map { mean({ 1 - $0 }, $0) }
        for i in 0..<b {
            for j in 0..<p {
                let x = (0..<c).map { f[(i * c + $0) * p + j] }
                let z = head[c] + (0..<c).reduce(0) { $0 + head[$1] * x[$1] }
                var distances = 0.0
                for ch in 0..<c {
                    let d1 = x[ch] - c1[ch], d0 = x[ch] - c0[ch]
                    distances += d0 * d0 - d1 * d1
                }
                #expect(abs(z - distances) < 1e-10)
            }
        }
    }

    /// A support set without foreground (or background) has no prototype: the head stays
    /// the meta-learned one, and nothing flows back.
    @Test func aMissingClassAddsNothing() {
        let (c, p, b) = (3, 10, 2)
        let (f, _, v) = Self.sample(channels: c, pixels: p, batch: b, seed: 5)
        for fill in [0.0, 1.0] {
            let masks = [Double](repeating: fill, count: b * p)
            let prototypes = PrototypeHead<Double>(features: f, masks: masks, batch: b, channels: c, pixels: p)
            #expect(!prototypes.isDefined)
            var head = [Double](repeating: 0.5, count: c + 1)
            prototypes.add(to: &head)
            #expect(head == [Double](repeating: 0.5, count: c + 1))
            var cotangent = [Double](repeating: 7, count: f.count)
            prototypes.backward(head: v, masks: masks, batch: b, pixels: p, into: &cotangent)
            #expect(cotangent.allSatisfy { $0 == 7 })
        }
    }

    @Test func secondOrderMatchesFiniteDifferences() throws {
        let checks = MetaGradientTests()
        let plain = try checks.finiteDifferenceError(Self.config())
        #expect(plain < 1e-5, "relative error \(plain)")
        // The MAML objective jumps where an inner step's gradient crosses a ReLU or max-pool
        // switch; with MAML++'s rates one lies within 1e-6 of the point on the helper's
        // default task, so this case runs on another (it passes on 7 of the first 8).
        let mamlPlusPlus = try checks.finiteDifferenceError(Self.config(learnedRates: true, multiStep: true), step: 4, taskSeed: 1)
        #expect(mamlPlusPlus < 1e-5, "relative error \(mamlPlusPlus)")
        let noSteps = try checks.finiteDifferenceError({ var c = Self.config(); c.innerSteps = 0; return c }())
        #expect(noSteps < 1e-5, "relative error \(noSteps)")
        // The check tells first order apart here too.
        let first = try checks.finiteDifferenceError(Self.config(), analyticOrder: .first)
        #expect(first > 1e-2, "first order unexpectedly exact: \(first)")
    }

    /// The meta-gradient through the prototypes reaches the body: without it, the body would
    /// get only the inner loop's terms, and the objective of a prototype learner is not the
    /// plain learner's.
    @Test func thePrototypesChangeTheObjectiveAndTheGradient() throws {
        let proto = try MetaLearner<Double>(config: Self.config())
        let plain = try MetaLearner<Double>(config: MetaGradientTests.config(order: .second))
        let meta = proto.layout.initialValues(seed: 9, innerLearningRate: 0.5).map { Double($0) }
        let task = MetaGradientTests.task(seed: 3)
        var a = [Double](repeating: 0, count: meta.count), b = a
        _ = proto.metaGradient(meta: meta, task: task, into: &a)
        _ = plain.metaGradient(meta: meta, task: task, into: &b)
        #expect(proto.objective(meta: meta, task: task) != plain.objective(meta: meta, task: task))
        let head = proto.config.model.headRange(proto.layout.model)
        #expect(zip(a[0..<head.lowerBound], b[0..<head.lowerBound]).contains { abs($0 - $1) > 1e-6 })
    }

    /// Adaptation, fine-tuning and the meta-gradient start from the same theta_0: the
    /// meta-learned head plus the support set's prototype head, the body unchanged.
    @Test func adaptationAndFineTuningStartFromThePrototypeHead() throws {
        var c = Self.config()
        c.model = UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 8, groups: 4).spec
        c.supportShots = 3
        c.queryShots = 4
        let learner = try MetaLearner<Float>(config: c)
        let meta = learner.layout.initialValues(seed: 6, innerLearningRate: c.innerLearningRate)
        let task = MetaGradientTests.task16(seed: 2, support: 3, query: 4)
        let adapted = learner.adapt(meta: meta, supportImages: task.supportImages, supportMasks: task.supportMasks,
                                    checkpoints: [0, 2])
        let head = c.model.headRange(learner.layout.model)
        #expect(adapted[0][0..<head.lowerBound] == meta[0..<head.lowerBound])
        #expect(adapted[0][head] != meta[head])
        #expect(adapted[1] != adapted[0])

        let network = try Network<Float>(spec: c.model, capacity: 4)
        let start = Array(meta.prefix(learner.layout.model.count))
        for headOnly in [false, true] {
            let tuned = Baselines.fineTune(network: network, start: start, images: task.supportImages, masks: task.supportMasks,
                                           settings: .init(steps: 3, learningRate: 1e-3, headOnly: headOnly, prototypeHead: true),
                                           checkpoints: [0, 3])
            #expect(tuned[0] == adapted[0])
            #expect(tuned[1] != tuned[0])
        }
        let plain = Baselines.fineTune(network: network, start: start, images: task.supportImages, masks: task.supportMasks,
                                       settings: .init(steps: 0, learningRate: 1e-3))
        #expect(plain == start)
        // Two fine-tunings that differ only in their start do not share a trajectory.
        let a = MetaTest.Adaptation.fineTune(start: start, settings: .init(steps: 5, learningRate: 1e-3))
        let b = MetaTest.Adaptation.fineTune(start: start, settings: .init(steps: 9, learningRate: 1e-3, prototypeHead: true))
        #expect(!a.sharesTrajectory(with: b))
    }

    static func headOnly(order: MetaOrder, multiStep: Bool = false) -> MetaConfig {
        var c = MetaGradientTests.headOnly(order: order, multiStep: multiStep)
        c.prototypeHead = true
        return c
    }

    /// With a head-only inner loop (Proto-ANIL), against finite differences (the features
    /// path against the general one: `MetaGradientTests.headOnlyFeaturesPathMatchesTheGeneralPath`).
    @Test func headOnlyInnerLoopFromThePrototypeHead() throws {
        let checks = MetaGradientTests()
        let err = try checks.finiteDifferenceError(Self.headOnly(order: .second))
        #expect(err < 1e-5, "relative error \(err)")
        let multi = try checks.finiteDifferenceError(Self.headOnly(order: .second, multiStep: true), step: 4)
        #expect(multi < 1e-5, "relative error \(multi)")
    }

    @Test func itIsValidated() throws {
        var c = Self.config(order: .reptile)
        #expect(throws: MetaConfigError.self) { try c.validate() }
        c = Self.config()
        c.model.nodes.append(ModelSpec.Node(name: "extra", op: .relu, inputs: [c.model.nodes.count - 1]))
        #expect(throws: MetaConfigError.self) { try c.validate() }
        #expect(throws: Never.self) { try Self.config(order: .first, learnedRates: true, multiStep: true).validate() }
    }
}
