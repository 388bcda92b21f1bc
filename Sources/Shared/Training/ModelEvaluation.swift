import Datasets
import Evaluation
import Foundation
import MetaLearning

/// A trained model meta-tested on a dataset's tasks (`evaluate`): it adapts to each sampled
/// instance from K shots and is scored on the rest; optionally beside the quick baselines,
/// which use the fixed preset `Baselines.Preset.standard` rather than settings chosen on
/// meta-validation (the study's protocol does that).
public struct ModelEvaluation {
    public var model: TrainedModel
    public var adaptation: MetaTest.Adaptation
    public var source: TaskSource
    public var tasks: [Int]
    public var shots = 5
    public var query = 5
    public var instancesPerTask = 10
    public var seed: UInt64 = 2024
    /// Also scratch and transfer with the fixed preset.
    public var baselines = false
    /// Joint-training steps of the transfer baseline.
    public var transferSteps = 100
    /// Fine-tuning steps of the baselines (nil: the preset's).
    public var fineTuneSteps: Int?

    public init(model: TrainedModel, adaptation: MetaTest.Adaptation, source: TaskSource, tasks: [Int]) {
        self.model = model
        self.adaptation = adaptation
        self.source = source
        self.tasks = tasks
    }

    /// What the baselines' numbers mean, printed beside them.
    public static let baselineNote = "The baselines use a fixed preset (Adam 30 steps at 3e-3 from scratch and 1e-3 from the transfer model), not settings chosen on meta-validation: they can fail on tasks the preset does not suit. For a fair comparison, run `study`, which tunes every method with the same effort on meta-validation tasks."

    /// Scores MAML (and the baselines) on the same instances; `note` receives progress lines.
    public func run(threads: Int, note: @escaping @Sendable (String) -> Void,
                    progress: @escaping @Sendable (Int, Int) -> Void) throws -> [MetaTest.MethodResult] {
        let instances = TaskSampler.evaluation(seed: seed, pool: tasks, perTask: instancesPerTask)
        var methods = [MetaTest.Method(name: "maml", adaptation: adaptation)]
        if baselines {
            let layout = try MetaLayout(config: model.config)
            let random = layout.model.initialValues(seed: seed)
            let others = source.taskNames.indices.filter { !tasks.contains($0) }
            let preset = fineTuneSteps.map { Baselines.Preset.standard.withFineTuneSteps($0) } ?? .standard
            methods.append(.init(name: "scratch", adaptation: .fineTune(start: random, settings: preset.scratch)))
            if others.isEmpty {
                note("transfer baseline skipped: every task is being evaluated, none is left to train on")
            } else {
                var config = model.run.training
                config.meta.supportShots = shots
                config.meta.queryShots = query
                note("training the transfer baseline on \(others.count) other task(s)")
                let transfer = try JointTraining(config: config, source: source, trainTasks: others,
                                                 settings: .init(heads: .shared, learningRate: preset.jointLearningRate, steps: transferSteps))
                    .train(initial: random).parameters
                methods.append(.init(name: "transfer", adaptation: .fineTune(start: transfer, settings: preset.transfer)))
            }
        }
        return try MetaTest(source: source, model: model.config.model, instances: instances, seed: seed, support: shots, query: query)
            .run(methods, threads: threads, progress: progress)
    }
}
