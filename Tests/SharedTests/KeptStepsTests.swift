import Core
import Engine
import MetaLearning
import Testing
import TestSupport

/// Keeping inner steps' primal passes on tapes (`MEDMAML_KEEP_STEPS`) trades memory for the
/// recomputation in the exact second-order meta-gradient. It must not change one bit: the
/// tangent passes read only what the primal passes left, and a replay gives them the same.
@Suite struct KeptStepsTests {
    /// Every layer kind: 3x3 convolutions with and without bias, GroupNorm with a fused ReLU
    /// and without (read twice, then a separate ReLU), max-pooling, upsampling, a concat
    /// whose inputs accumulate cotangents, and the 1x1 head.
    static var spec: ModelSpec {
        var g = GraphBuilder(channels: 1, height: 8, width: 8)
        let a = g.add(.conv2d(outChannels: 8, kernel: 3, bias: true), 0)
        let b = g.add(.groupNorm(groups: 2, epsilon: 1e-5), a)
        let c = g.add(.relu, b)
        let d = g.add(.maxPool2, c)
        let e = g.add(.conv2d(outChannels: 8, kernel: 3, bias: false), d)
        let f = g.add(.groupNorm(groups: 4, epsilon: 1e-5), e)
        let r = g.add(.relu, f)
        let s = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), f)
        let u = g.add(.upsample2, g.add(.concat, r, s))
        let k = g.add(.concat, u, c)
        return g.head(g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), k))
    }

    /// A product replayed from a tape equals the recomputed one bit for bit, on the Float32
    /// path (oneDNN's primitives by default) and on the Float64 one (unfolding), even with
    /// other passes and another tape in between.
    func replayMatchesRecomputation<S: EngineScalar>(_: S.Type) throws {
        let net = try Network<S>(spec: Self.spec, capacity: 3)
        let p = Problem<S>(layout: net.layout, input: Self.spec.input, batch: 3, seed: 21)
        let other = Problem<S>(layout: net.layout, input: Self.spec.input, batch: 3, seed: 22)
        let n = net.layout.count
        var recorded = [S](repeating: 0, count: n), plain = recorded, scratch = recorded
        var replayed = recorded, recomputed = recorded, gradientFromProduct = recorded
        let tape = net.makeTape(), otherTape = net.makeTape()
        #expect(net.tapeBytes > 0)

        let value = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: 3,
                                 into: &recorded, recordingInto: tape)
        // Passes in between must not disturb the tape: the network's own buffers and another tape.
        _ = net.gradient(parameters: other.parameters, images: other.images, masks: other.masks, batch: 2,
                         into: &scratch, recordingInto: otherTape)
        _ = net.hessianVectorProduct(parameters: other.parameters, direction: other.direction, images: other.images,
                                     masks: other.masks, batch: 3, into: &scratch)
        _ = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: 3, into: &plain)
        let replayedValue = net.hessianVectorProduct(
            parameters: p.parameters, direction: p.direction, images: p.images, masks: p.masks, batch: 3,
            into: &replayed, replaying: tape)
        let recomputedValue = net.hessianVectorProduct(
            parameters: p.parameters, direction: p.direction, images: p.images, masks: p.masks, batch: 3,
            into: &recomputed, gradient: &gradientFromProduct)

        #expect(Self.same(recorded, plain), "the recording pass's gradient")
        #expect(Self.same(gradientFromProduct, recorded), "the product's gradient")
        #expect(Self.same(replayed, recomputed), "replayed against recomputed H·v")
        #expect(replayedValue.total == value.total && recomputedValue.total == value.total)
        #expect(recomputed.contains { $0 != 0 })
    }

    @Test func replayMatchesRecomputationInFloat32() throws { try replayMatchesRecomputation(Float.self) }
    @Test func replayMatchesRecomputationInFloat64() throws { try replayMatchesRecomputation(Double.self) }

    /// The replayed product is the exact H·v: against central differences of the gradient in Float64.
    @Test func replayedProductMatchesFiniteDifferences() throws {
        let net = try Network<Double>(spec: Self.spec, capacity: 2)
        let p = Problem<Double>(layout: net.layout, input: Self.spec.input, batch: 2, seed: 5)
        let n = net.layout.count, h = 1e-6
        var g = [Double](repeating: 0, count: n), plus = g, minus = g, hv = g
        let tape = net.makeTape()
        _ = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: 2, into: &g, recordingInto: tape)
        _ = net.hessianVectorProduct(parameters: p.parameters, direction: p.direction, images: p.images,
                                     masks: p.masks, batch: 2, into: &hv, replaying: tape)
        _ = net.gradient(parameters: zip(p.parameters, p.direction).map { $0 + h * $1 }, images: p.images,
                         masks: p.masks, batch: 2, into: &plus)
        _ = net.gradient(parameters: zip(p.parameters, p.direction).map { $0 - h * $1 }, images: p.images,
                         masks: p.masks, batch: 2, into: &minus)
        let numeric = zip(plus, minus).map { ($0 - $1) / (2 * h) }
        #expect(relativeError(hv, numeric) < 1e-6)
    }

    /// The meta-gradient and its statistics are the same whatever number of steps is kept,
    /// with learned rates and the multi-step loss (every branch of the backward sweep), in
    /// Float32 (the training path) and Float64.
    func keptStepsLeaveTheMetaGradientUnchanged<S: EngineScalar>(_: S.Type) throws {
        let config = MetaGradientTests.config(order: .second, learnedRates: true, multiStep: true)
        let task = MetaGradientTests.task(seed: 4)
        func run(kept: Int) throws -> ([S], MetaLearner<S>.Stats) {
            let learner = try MetaLearner<S>(config: config, keptSteps: kept)
            let meta = learner.layout.initialValues(seed: 3, innerLearningRate: config.innerLearningRate).map { S($0) }
            var out = [S](repeating: 0, count: learner.layout.count)
            var stats = learner.metaGradient(meta: meta, task: task, into: &out)
            // A second task on the same learner reuses its tapes.
            stats = learner.metaGradient(meta: meta, task: MetaGradientTests.task(seed: 5), into: &out)
            return (out, stats)
        }
        let (reference, stats) = try run(kept: 0)
        for kept in [1, config.innerSteps, 50] {
            let (out, s) = try run(kept: kept)
            #expect(Self.same(out, reference), "kept \(kept)")
            #expect(s.queryLoss == stats.queryLoss && s.queryDice == stats.queryDice
                    && s.supportLoss == stats.supportLoss && s.objective == stats.objective)
        }
    }

    @Test func keptStepsLeaveTheMetaGradientUnchangedInFloat32() throws { try keptStepsLeaveTheMetaGradientUnchanged(Float.self) }
    @Test func keptStepsLeaveTheMetaGradientUnchangedInFloat64() throws { try keptStepsLeaveTheMetaGradientUnchanged(Double.self) }

    /// Bitwise equality, reported as the largest difference rather than two arrays.
    static func same<S: EngineScalar>(_ a: [S], _ b: [S]) -> Bool {
        let equal = a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
        if !equal {
            let largest = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            print("arrays differ: \(a.count) vs \(b.count) values, largest difference \(largest)")
        }
        return equal
    }

    @Test func keptStepsOutOfRangeAreRefused() {
        let config = MetaGradientTests.config(order: .second)
        #expect(throws: MetaConfigError.self) { try MetaLearner<Float>(config: config, keptSteps: -1) }
        #expect(throws: MetaConfigError.self) { try MetaLearner<Float>(config: config, keptSteps: 1001) }
    }
}
