import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Pretraining

/// The masked-image reconstruction pretext (`MaskedReconstructionSource`) trained as a
/// model: joint training with one shared head, in this process, from the random
/// initialisation, Adam with cosine decay over `config.steps` steps. It keeps no
/// checkpoints; the result is written as a trained model (`final.safetensors`) that
/// meta-training can start from.
public struct MaskedPretraining {
    public let source: MaskedReconstructionSource
    public let config: TrainingConfig
    /// The dataset the unlabelled images came from (stored with the model).
    public let dataset: DatasetSpec

    /// `config`'s learned inner rates are dropped: the pretext trains the model alone.
    public init(images: UnlabelledImages, options: MaskedReconstructionSource.Options, config: TrainingConfig,
                dataset: DatasetSpec) throws {
        source = try MaskedReconstructionSource(images: images, options: options)
        var c = config
        c.meta.learnedInnerRates = false
        self.config = c
        self.dataset = dataset
    }

    /// Images per step.
    public var imagesPerStep: Int { config.metaBatch * (config.meta.supportShots + config.meta.queryShots) }

    /// Trains and writes `path`; returns the parameters' SHA-256, or nil when `progress`
    /// returned false (stopped: nothing is written).
    public func run(writingTo path: String, runFile: String?, progress: (Int) -> Bool) throws -> String? {
        let layout = try MetaLayout(config: config.meta)
        let joint = JointTraining(config: config, source: source, trainTasks: Array(source.taskNames.indices),
                                  settings: .init(heads: .shared, learningRate: config.optimizer.learningRate, steps: config.steps,
                                                  cosine: true))
        var stopped = false
        let model = try joint.train(initial: layout.model.initialValues(seed: config.initSeed ?? config.seed)) { step, _ in
            stopped = !progress(step)
            return !stopped
        }
        guard !stopped else { return nil }
        var spec = dataset
        spec.pseudo = nil
        spec.identity = source.identity
        let run = RunSpec(runID: RunSpec.randomID(), training: config, dataset: spec, split: source.defaultSplit, evaluation: EvaluationSpec())
        try TrainedModel.write(model.parameters, layout: layout, run: run, step: config.steps, runFile: runFile,
                               notes: ["pretext": "masked-reconstruction"], to: path)
        return SHA256.hex(floats: model.parameters)
    }
}
