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
    /// path (oneDNN's primitives by default) and on the Float64 one (unfolding), with other
    /// passes and another tape in between: the last pass before the replay is at other
    /// parameters and images, so a replay that read the network's own buffers, or state a
    /// layer kept outside the tape, would differ. The tape holds fewer images than the
    /// network (as a support set smaller than the query set gives).
    func replayMatchesRecomputation<S: EngineScalar>(_: S.Type) throws {
        let net = try Network<S>(spec: Self.spec, capacity: 3)
        let p = Problem<S>(layout: net.layout, input: Self.spec.input, batch: 2, seed: 21)
        let other = Problem<S>(layout: net.layout, input: Self.spec.input, batch: 3, seed: 22)
        let n = net.layout.count
        var recorded = [S](repeating: 0, count: n), plain = recorded, scratch = recorded
        var replayed = recorded, recomputed = recorded, gradientFromProduct = recorded
        let tape = net.makeTape(images: 2), otherTape = net.makeTape()
        #expect(net.tapeBytes(images: 2) > 0 && net.tapeBytes(images: 2) < net.tapeBytes())

        _ = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: 2, into: &plain)
        let value = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: 2,
                                 into: &recorded, recordingInto: tape)
        _ = net.gradient(parameters: other.parameters, images: other.images, masks: other.masks, batch: 3,
                         into: &scratch, recordingInto: otherTape)
        _ = net.hessianVectorProduct(parameters: other.parameters, direction: other.direction, images: other.images,
                                     masks: other.masks, batch: 3, into: &scratch)
        let replayedValue = net.hessianVectorProduct(
            parameters: p.parameters, direction: p.direction, images: p.images, masks: p.masks, batch: 2,
            into: &replayed, replaying: tape)
        let recomputedValue = net.hessianVectorProduct(
            parameters: p.parameters, direction: p.direction, images: p.images, masks: p.masks, batch: 2,
            into: &recomputed, gradient: &gradientFromProduct)
        // A tape replays as often as asked.
        var again = recorded
        _ = net.hessianVectorProduct(parameters: p.parameters, direction: p.direction, images: p.images,
                                     masks: p.masks, batch: 2, into: &again, replaying: tape)

        // After a replay the last pass's buffers are the tape's: two images, not three.
        #expect(net.nodeOutput(1, batch: 2) != nil && net.nodeOutput(1, batch: 3) == nil)
        #expect(Self.same(recorded, plain), "the recording pass's gradient")
        #expect(Self.same(gradientFromProduct, recorded), "the product's gradient")
        #expect(Self.same(replayed, recomputed), "replayed against recomputed H·v")
        #expect(Self.same(again, replayed), "a second replay")
        #expect(replayedValue.total == value.total && recomputedValue.total == value.total)
        #expect(recomputed.contains { $0 != 0 })
    }

    @Test func replayMatchesRecomputationInFloat32() throws { try replayMatchesRecomputation(Float.self) }
    @Test func replayMatchesRecomputationInFloat64() throws { try replayMatchesRecomputation(Double.self) }

    /// A tape keeps only the buffers some layer reads after the forward pass: on W1 (5
    /// images) every node's value except the two upsampled maps, and the cotangents of the
    /// convolutions' and GroupNorms' outputs, not those of the pools, the upsampled maps and
    /// the concatenations (which only the same backward pass reads). Per image that is
    /// 1,179,648 values and 856,064 cotangents where a full set of buffers is 2,748,416
    /// floats: 40.7 MB for 5 images instead of 55.0 MB, plus the layers' state (GroupNorm
    /// statistics, max-pool winners and, on oneDNN's path, each 3x3 convolution's input in
    /// the primitives' layout: 10.8 MB). A tape of every buffer was 65.7 MB.
    @Test func aTapeKeepsOnlyWhatTheLaterPassesRead() throws {
        let net = try Network<Float>(spec: UNetConfig.w1.spec, capacity: 5)
        let kept = 5 * (1_179_648 + 856_064) * 4
        #expect(net.tapeBytes(images: 5) >= kept && net.tapeBytes(images: 5) < kept + 11_000_000, "\(net.tapeBytes(images: 5))")
    }

    /// The replayed product is the exact H·v: against central differences of the gradient in Float64.
    @Test func replayedProductMatchesFiniteDifferences() throws {
        let net = try Network<Double>(spec: Self.spec, capacity: 2)
        let p = Problem<Double>(layout: net.layout, input: Self.spec.input, batch: 2, seed: 5)
        #expect(net.tapeBytes() > 0)
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

    /// The meta-gradient and its statistics are the same whatever number of steps is kept:
    /// with learned rates and the multi-step loss (every branch of the backward sweep), with
    /// plain SGD, and with derivative-order annealing (first order at step 0, so the tapes are
    /// made later); the support set (2) smaller than the query set (3); in Float32 (the
    /// training path) and Float64. Two tasks per learner: the second reuses the tapes.
    func keptStepsLeaveTheMetaGradientUnchanged<S: EngineScalar>(_: S.Type) throws {
        var rich = MetaGradientTests.config(order: .second, learnedRates: true, multiStep: true)
        var plain = MetaGradientTests.config(order: .second)
        var annealed = MetaGradientTests.config(order: .second, multiStep: true)
        annealed.firstOrderSteps = 1
        rich.queryShots = 3
        plain.queryShots = 3
        annealed.queryShots = 3
        for config in [rich, plain, annealed] {
            func run(kept: Int) throws -> [([S], MetaLearner<S>.Stats)] {
                let learner = try MetaLearner<S>(config: config, keptSteps: kept)
                let meta = learner.layout.initialValues(seed: 3, innerLearningRate: config.innerLearningRate).map { S($0) }
                return (0..<2).map { step in
                    var out = [S](repeating: 0, count: learner.layout.count)
                    let stats = learner.metaGradient(meta: meta, task: Self.task(seed: UInt64(4 + step)), step: step, into: &out)
                    return (out, stats)
                }
            }
            let reference = try run(kept: 0)
            for kept in [1, config.innerSteps, 50] {
                for ((out, s), (expected, stats)) in zip(try run(kept: kept), reference) {
                    #expect(Self.same(out, expected), "kept \(kept), \(config)")
                    #expect(s.queryLoss == stats.queryLoss && s.queryDice == stats.queryDice
                            && s.supportLoss == stats.supportLoss && s.objective == stats.objective)
                }
            }
        }
    }

    /// A task may bring more support images than the configured shots (up to the network's
    /// capacity, which the query shots set): the tapes grow to hold its pass. They were made
    /// for the configured shots, and recording a larger pass trapped.
    @Test func keptStepsTakeALargerSupportSetThanConfigured() throws {
        var config = MetaGradientTests.config(order: .second, learnedRates: true, multiStep: true)
        config.supportShots = 1
        config.queryShots = 3
        let task = Self.task(seed: 8)  // 2 support images
        func run(kept: Int) throws -> [Float] {
            let learner = try MetaLearner<Float>(config: config, keptSteps: kept)
            let meta = learner.layout.initialValues(seed: 3, innerLearningRate: config.innerLearningRate)
            var out = [Float](repeating: 0, count: learner.layout.count)
            _ = learner.metaGradient(meta: meta, task: Self.task(seed: 9), step: 0, into: &out)
            _ = learner.metaGradient(meta: meta, task: task, step: 1, into: &out)
            return out
        }
        let reference = try run(kept: 0)
        #expect(Self.same(try run(kept: 2), reference))
    }

    /// An 8x8 task with 2 support and 3 query images.
    static func task(seed: UInt64) -> TaskSample {
        var rng = RandomStream(seed: seed)
        func masks(_ n: Int) -> [Float] { (0..<(n * 64)).map { _ in rng.chance(0.35) ? 1 : 0 } }
        let sm = masks(2), qm = masks(3)
        return TaskSample(shape: FeatureShape(channels: 1, height: 8, width: 8),
                          supportImages: sm.map { $0 + Float(rng.normal()) * 0.7 }, supportMasks: sm,
                          queryImages: qm.map { $0 + Float(rng.normal()) * 0.7 }, queryMasks: qm)
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
