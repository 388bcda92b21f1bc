import Core
import Datasets
import Engine
import Evaluation
import MetaLearning
import Testing
import TestSupport

/// Multi-class heads (the universe's transfer baseline): derivatives against finite
/// differences, and training that learns.
@Suite struct MultiClassTrainingTests {
    /// dL/dh and dL/dF of `MultiClassHeads` against central differences, in Float64.
    @Test func headGradientsMatchFiniteDifferences() {
        let channels = 3, pixels = 10, classes = 4, batch = 2
        var rng = RandomStream(seed: 3)
        let features = (0..<(batch * channels * pixels)).map { _ in rng.normal() }
        let labels = (0..<(batch * pixels)).map { _ in UInt8(rng.below(classes + 1)) }
        let heads = (0..<(classes * (channels + 1))).map { _ in 0.5 * rng.normal() }
        let h = MultiClassHeads<Double>(channels: channels, pixels: pixels, classes: classes, capacity: batch)
        func loss(_ f: [Double], _ w: [Double]) -> Double {
            var c = [Double](repeating: 0, count: f.count), g = [Double](repeating: 0, count: w.count)
            return h.lossAndGradient(features: f, labels: labels, batch: batch, heads: w, featureCotangent: &c, headGradient: &g)
        }
        var cotangent = [Double](repeating: 0, count: features.count), gradient = [Double](repeating: 0, count: heads.count)
        _ = h.lossAndGradient(features: features, labels: labels, batch: batch, heads: heads, featureCotangent: &cotangent,
                              headGradient: &gradient)
        let step = 1e-6
        for i in heads.indices {
            var plus = heads, minus = heads
            plus[i] += step
            minus[i] -= step
            let numeric = (loss(features, plus) - loss(features, minus)) / (2 * step)
            #expect(abs(numeric - gradient[i]) < 1e-6 * max(1, abs(numeric)), "head \(i): \(numeric) vs \(gradient[i])")
        }
        for i in stride(from: 0, to: features.count, by: 3) {
            var plus = features, minus = features
            plus[i] += step
            minus[i] -= step
            let numeric = (loss(plus, heads) - loss(minus, heads)) / (2 * step)
            #expect(abs(numeric - cotangent[i]) < 1e-6 * max(1, abs(numeric)), "feature \(i): \(numeric) vs \(cotangent[i])")
        }
    }

    /// Multi-class training on the universe's label maps lowers the loss of held-out images'
    /// classes far below the untrained model's (with 1 step instead of 60 this fails).
    @Test func multiClassTrainingLearnsTheClasses() throws {
        let universe = try TaskUniverse(size: 16, options: .init(types: 10))
        var config = TrainingConfig(meta: MetaConfig(model: UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 4, groups: 2).spec))
        config.metaBatch = 2
        config.meta.supportShots = 4
        config.meta.queryShots = 4
        let train = universe.defaultSplit.partition(universe.taskNames).train
        let initial = try MetaLayout(config: config.meta).model.initialValues(seed: 1)
        func heldOutLoss(_ model: JointTraining.Model) throws -> Double {
            let network = try Network<Double>(spec: config.meta.model, capacity: 4)
            let f = config.meta.model.headFeatures!
            let heads = MultiClassHeads<Double>(channels: network.shapes[f].channels, pixels: network.shapes[f].plane,
                                                classes: universe.classCount, capacity: 4)
            let weights = (1...universe.classCount).flatMap { (model.heads[$0] ?? []).map(Double.init) }
            var total = 0.0
            for index in UInt64(1000)..<1004 {
                let (images, labels) = universe.labelledImages(index: index, seed: 77, count: 4)
                let features = network.features(parameters: model.parameters.map(Double.init), images: images.map(Double.init), batch: 4)
                var c = [Double](repeating: 0, count: 4 * network.shapes[f].count), g = [Double](repeating: 0, count: weights.count)
                total += heads.lossAndGradient(features: features, labels: labels, batch: 4, heads: weights, featureCotangent: &c, headGradient: &g)
            }
            return total / 4
        }
        let untrained = try JointTraining(config: config, source: universe, trainTasks: train,
                                          settings: .init(heads: .multiClass, learningRate: 3e-3, steps: 1)).train(initial: initial)
        let trained = try JointTraining(config: config, source: universe, trainTasks: train,
                                        settings: .init(heads: .multiClass, learningRate: 3e-3, steps: 60)).train(initial: initial)
        let before = try heldOutLoss(untrained), after = try heldOutLoss(trained)
        #expect(after < 0.8 * before, "held-out multi-class loss \(before) -> \(after)")
        // The stored model starts a new task from the mean of the class heads.
        let head = config.meta.model.headRange(ParameterLayout(try config.meta.model.parameterShapes()))
        let mean = (0..<head.count).map { i in (1...universe.classCount).map { trained.heads[$0]![i] }.reduce(0, +) / Float(universe.classCount) }
        #expect(zip(Array(trained.parameters[head]), mean).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func theHierarchicalBootstrapCoversTheMeanAndWidensWithSeedSpread() {
        var rng = RandomStream(seed: 9)
        func groups(seedSpread: Double) -> [[[Double]]] {
            (0..<3).map { s in
                let offset = seedSpread * Double(s - 1)
                return (0..<6).map { _ in (0..<4).map { _ in 0.5 + offset + 0.05 * rng.normal() } }
            }
        }
        let tight = HierarchicalBootstrap.interval(groups(seedSpread: 0))
        let spread = HierarchicalBootstrap.interval(groups(seedSpread: 0.1))
        #expect(tight.lower <= tight.mean && tight.mean <= tight.upper && abs(tight.mean - 0.5) < 0.05)
        #expect(spread.upper - spread.lower > 3 * (tight.upper - tight.lower))
        #expect(spread.perSeed.count == 3)
        #expect(HierarchicalBootstrap.interval(groups(seedSpread: 0.1)) != spread)
        let again = groups(seedSpread: 0)
        #expect(HierarchicalBootstrap.interval(again) == HierarchicalBootstrap.interval(again))
    }

    /// 3D HD95 from distance transforms against brute force, with anisotropic voxels.
    @Test func volumeScoresMatchBruteForce() {
        var rng = RandomStream(seed: 4)
        let dims = (9, 7, 5), spacing = (0.7, 1.3, 2.5)
        for _ in 0..<5 {
            let a = (0..<(9 * 7 * 5)).map { _ in rng.chance(0.3) }, b = (0..<(9 * 7 * 5)).map { _ in rng.chance(0.3) }
            let scores = VolumeScores(prediction: a, truth: b, dims: dims, spacing: spacing)
            func coords(_ i: Int) -> (Double, Double, Double) {
                (Double(i % 9) * spacing.0, Double(i / 9 % 7) * spacing.1, Double(i / 63) * spacing.2)
            }
            let sa = VolumeScores.surface(a, dims: dims), sb = VolumeScores.surface(b, dims: dims)
            func nearest(_ from: [Bool], _ to: [Bool]) -> [Double] {
                from.indices.filter { from[$0] }.map { i in
                    let p = coords(i)
                    return to.indices.filter { to[$0] }.map { j -> Double in
                        let q = coords(j)
                        return ((p.0 - q.0) * (p.0 - q.0) + (p.1 - q.1) * (p.1 - q.1) + (p.2 - q.2) * (p.2 - q.2)).squareRoot()
                    }.min()!
                }
            }
            let d = (nearest(sa, sb) + nearest(sb, sa)).sorted()
            let expected = d[min(d.count - 1, Int((0.95 * Double(d.count - 1)).rounded(.up)))]
            #expect(abs((scores.hd95 ?? -1) - expected) < 1e-9, "\(String(describing: scores.hd95)) vs \(expected)")
            let both = zip(a, b).filter { $0 && $1 }.count
            #expect(abs(scores.dice - 2 * Double(both) / Double(a.filter { $0 }.count + b.filter { $0 }.count)) < 1e-12)
        }
    }
}
