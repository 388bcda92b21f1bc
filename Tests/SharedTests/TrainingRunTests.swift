import Core
import Datasets
import Engine
import Evaluation
import MetaLearning
import Testing
import TestSupport
import Training

/// The in-process trainer: `TrainingRun` with threads in this process (what `--in-process`
/// runs, and the reference every distributed run must reproduce bit for bit).
@Suite(.serialized) struct TrainingRunTests {
    static func config(steps: Int, order: MetaOrder = .second) -> TrainingConfig {
        var c = TrainingConfig()
        c.meta = MetaConfig(model: UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8, groups: 4).spec)
        c.meta.order = order
        c.optimizer = Adam(learningRate: 1e-3)
        c.metaBatch = 4
        c.steps = steps
        c.seed = 17
        return c
    }

    static func heldOutDice(_ meta: [Float], _ config: TrainingConfig, _ source: SyntheticFamily) throws -> MeanCI {
        let test = source.defaultSplit.partition(source.taskNames).test
        let instances = TaskSampler.evaluation(seed: 99, pool: test, perTask: 4)
        let result = try MetaTest(source: source, model: config.meta.model, instances: instances, seed: 99, support: 5, query: 5)
            .run([.init(name: "maml", adaptation: .maml(meta: meta, config: config.meta, steps: 5))], threads: 2)
        return result[0].dice
    }

    /// A short second-order meta-training run makes 5-shot adaptation on held-out tasks
    /// (unseen structure and unseen style) clearly better than adapting the untrained init.
    @Test func metaTrainingImprovesHeldOutFewShotDice() throws {
        let config = Self.config(steps: 30)
        let folder = TemporaryFolder()
        let run = try syntheticRun(config, size: 32, backend: InProcessBackend(threads: 2), folder: folder.path)
        let source = SyntheticFamily(size: 32)
        let before = try Self.heldOutDice(run.outer.meta, config, source)
        let summary = try run.run()
        #expect(summary.steps == 30 && summary.stoppedBySignal == nil)
        let after = try Self.heldOutDice(summary.finalParameters, config, source)
        #expect(after.mean > before.mean + 0.15, "held-out Dice \(before) -> \(after)")
        #expect(after.lower > before.upper, "confidence intervals overlap: \(before) -> \(after)")
    }

    /// The same run on 1 and 3 threads ends with bitwise-identical parameters.
    @Test(arguments: [MetaOrder.second, .first, .reptile])
    func resultsDoNotDependOnThreadCount(order: MetaOrder) throws {
        var hashes: [String] = []
        for threads in [1, 3] {
            var config = Self.config(steps: 3, order: order)
            config.meta.model = UNetConfig(height: 16, width: 16, depth: 1, baseChannels: 4, groups: 2).spec
            config.metaBatch = 5
            let folder = TemporaryFolder()
            hashes.append(try syntheticRun(config, size: 16, backend: InProcessBackend(threads: threads), folder: folder.path).run().finalHash)
        }
        #expect(hashes[0] == hashes[1])
    }

    @Test func averagingIsInTaskOrder() {
        let a: [Float] = [1e8, 1], b: [Float] = [1, 1], c: [Float] = [-1e8, 1]
        // ((1e8 + 1) - 1e8) = 0 in Float32, while (1e8 - 1e8) + 1 = 1: the order is fixed.
        #expect(averageInTaskOrder([a, b, c])[0] == 0)
        #expect(averageInTaskOrder([a, c, b])[0] == Float(1) / 3)
    }

    @Test func samplingIsAPureFunctionOfSeedAndStep() {
        let a = TaskSampler.metaBatch(step: 5, seed: 1, pool: [0, 2, 4], size: 8)
        #expect(a == TaskSampler.metaBatch(step: 5, seed: 1, pool: [0, 2, 4], size: 8))
        #expect(a != TaskSampler.metaBatch(step: 6, seed: 1, pool: [0, 2, 4], size: 8))
        #expect(a.allSatisfy { [0, 2, 4].contains($0.task) })
    }
}
