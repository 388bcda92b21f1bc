import Core
import Datasets
import Engine
import Evaluation
import MetaLearning
import Testing

/// The meta-test scorer: methods that differ only in their number of steps share one run per
/// instance (`MetaTest.run`), and must score exactly as when each runs alone.
@Suite struct MetaTestTests {
    static let source = SyntheticFamily(size: 16, variant: .multiStructure)

    static func meta() throws -> (MetaConfig, [Float]) {
        var config = MetaConfig(model: UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 4, groups: 2).spec)
        config.learnedInnerRates = true
        config.innerSteps = 3
        return (config, try MetaLayout(config: config).initialValues(seed: 4, innerLearningRate: 0.05))
    }

    static func test(_ shots: Int = 3) -> MetaTest {
        MetaTest(source: source, model: (try! meta()).0.model,
                 instances: TaskSampler.evaluation(seed: 8, pool: [0, 3, 5], perTask: 2), seed: 8, support: shots, query: 2)
    }

    @Test func methodsSharingATrajectoryScoreAsWhenRunAlone() throws {
        let (config, meta) = try Self.meta()
        let model = Array(meta.prefix(try MetaLayout(config: config).model.count))
        let other = try MetaLayout(config: config).initialValues(seed: 9, innerLearningRate: 0.05)
        let methods: [MetaTest.Method] = [
            .init(name: "maml 4", adaptation: .maml(meta: meta, config: config, steps: 4, rateScale: 2)),
            .init(name: "adam 6", adaptation: .fineTune(start: model, settings: .init(steps: 6, learningRate: 3e-3))),
            .init(name: "maml 0", adaptation: .maml(meta: meta, config: config, steps: 0, rateScale: 2)),
            .init(name: "maml 1", adaptation: .maml(meta: meta, config: config, steps: 1, rateScale: 2)),
            // Not on the trajectories above: another rate scale, start, learning rate, head only.
            .init(name: "maml 4 x1", adaptation: .maml(meta: meta, config: config, steps: 4, rateScale: 1)),
            .init(name: "maml 2 other", adaptation: .maml(meta: other, config: config, steps: 2, rateScale: 2)),
            .init(name: "adam 2", adaptation: .fineTune(start: model, settings: .init(steps: 2, learningRate: 3e-3))),
            .init(name: "adam 2 1e-2", adaptation: .fineTune(start: model, settings: .init(steps: 2, learningRate: 1e-2))),
            .init(name: "adam 6 head", adaptation: .fineTune(start: model, settings: .init(steps: 6, learningRate: 3e-3, headOnly: true))),
            .init(name: "adam 4", adaptation: .fineTune(start: model, settings: .init(steps: 4, learningRate: 3e-3))),
            .init(name: "adam 4 again", adaptation: .fineTune(start: model, settings: .init(steps: 4, learningRate: 3e-3))),
        ]
        #expect(MetaTest.trajectories(methods).map(\.methods) == [[0, 2, 3], [1, 6, 9, 10], [4], [5], [7], [8]])
        #expect(MetaTest.trajectories(methods).map(\.checkpoints) == [[4, 0, 1], [6, 2, 4, 4], [4], [2], [2], [6]])

        let together = try Self.test().run(methods, threads: 2)
        for (m, method) in methods.enumerated() {
            let alone = try Self.test().run([method], threads: 1)[0]
            #expect(together[m].name == method.name)
            #expect(together[m].instanceDice == alone.instanceDice, "\(method.name)")
            #expect(together[m].dice.mean == alone.dice.mean, "\(method.name)")
        }
        // The methods are not all alike, or equal scores would prove nothing.
        #expect(Set(together.map(\.instanceDice)).count >= 8)
    }

    /// The checkpointed inner loop and fine-tuning give, at each count, the parameters of a run
    /// of exactly that many steps, whatever order the counts come in.
    @Test func checkpointsAreTheParametersOfRunsOfThatLength() throws {
        let (config, meta) = try Self.meta()
        let sample = try Self.source.sample(task: 2, index: 0, seed: 3, support: 3, query: 1)
        let learner = try MetaLearner<Float>(config: config)
        let counts = [5, 0, 2, 5, 1]
        let points = learner.adapt(meta: meta, supportImages: sample.supportImages, supportMasks: sample.supportMasks, checkpoints: counts)
        for (k, point) in zip(counts, points) {
            let fresh = try MetaLearner<Float>(config: config)
            #expect(point == fresh.adapt(meta: meta, supportImages: sample.supportImages, supportMasks: sample.supportMasks, steps: k))
        }
        #expect(points[0] != points[2] && points[2] != points[4] && points[1] != points[4])

        let network = try Network<Float>(spec: config.model, capacity: 3)
        let start = Array(meta.prefix(network.layout.count))
        let settings = Baselines.FineTune(steps: 99, learningRate: 1e-2)
        let tuned = Baselines.fineTune(network: network, start: start, images: sample.supportImages, masks: sample.supportMasks,
                                       settings: settings, checkpoints: counts)
        for (k, point) in zip(counts, tuned) {
            var alone = settings
            alone.steps = k
            #expect(point == Baselines.fineTune(network: network, start: start, images: sample.supportImages,
                                                masks: sample.supportMasks, settings: alone))
        }
        #expect(tuned[1] == start && tuned[0] != tuned[2])
    }

    /// A stop request (SIGINT to a study) ends a run at the next adaptation, with an error that
    /// says so, instead of after every adaptation: a study's tuning stage once ran on for
    /// minutes after its signal.
    @Test func aStopRequestEndsTheRunAtTheNextAdaptation() throws {
        let (config, meta) = try Self.meta()
        let methods = (1...4).map { MetaTest.Method(name: "x\($0)", adaptation: .maml(meta: meta, config: config, steps: 2, rateScale: Float($0))) }
        let jobs = 4 * Self.test().instances.count
        let asked = Locked(0), adapted = Locked(0)
        #expect(throws: MetaTest.Stopped.self) {
            _ = try Self.test().run(methods, threads: 2) { _, _ in
                adapted.withLock { $0 += 1 }
            } stop: {
                asked.withLock { $0 += 1; return $0 > 3 }
            }
        }
        // Every job asked, only those before the request adapted and reported progress.
        #expect(asked.withLock { $0 } == jobs)
        #expect(adapted.withLock { $0 } == 3)
        // Without a request the same run completes.
        #expect(try Self.test().run(methods, threads: 2, stop: { false }).count == 4)
    }
}
