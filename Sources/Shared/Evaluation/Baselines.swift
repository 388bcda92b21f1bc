import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// The two baselines the meta-test compares MAML with, computed by the same engine on the
/// same tasks and shots:
/// - **scratch**: the U-Net from a random initialisation, trained on the K support images only;
/// - **transfer**: the U-Net trained jointly (ordinary supervised training) on images of all
///   meta-train tasks, with the same data budget as meta-training, then fine-tuned on the
///   K support images.
public enum Baselines {
    /// Fine-tuning settings for the K support images (full batch, Adam).
    public struct FineTune: Codable, Hashable, Sendable {
        public var steps: Int
        public var learningRate: Float
        public init(steps: Int, learningRate: Float) {
            self.steps = steps
            self.learningRate = learningRate
        }
    }

    /// The baselines' settings, as one named preset that `demo` and `evaluate` both use.
    public struct Preset: Codable, Hashable, Sendable {
        /// Fine-tuning of the randomly initialised U-Net on the K shots.
        public var scratch: FineTune
        /// Fine-tuning of the jointly trained U-Net on the K shots.
        public var transfer: FineTune
        /// Adam learning rate of the joint (supervised) training.
        public var jointLearningRate: Float

        public init(scratch: FineTune, transfer: FineTune, jointLearningRate: Float) {
            self.scratch = scratch
            self.transfer = transfer
            self.jointLearningRate = jointLearningRate
        }

        /// The settings MedMAML ships: 30 Adam steps on the shots, at 3e-3 from a random start
        /// (far from any solution) and 1e-3 from the jointly trained one (already close).
        public static let standard = Preset(scratch: FineTune(steps: 30, learningRate: 3e-3),
                                            transfer: FineTune(steps: 30, learningRate: 1e-3),
                                            jointLearningRate: 1e-3)

        /// The same preset with `steps` fine-tuning steps for both baselines.
        public func withFineTuneSteps(_ steps: Int) -> Preset {
            var p = self
            p.scratch.steps = steps
            p.transfer.steps = steps
            return p
        }
    }

    /// Adam on the support loss from `start` (model parameters only).
    public static func fineTune(network: Network<Float>, start: [Float], images: [Float], masks: [Float],
                                settings: FineTune) -> [Float] {
        var params = start
        var state = Adam.State(count: params.count)
        let adam = Adam(learningRate: settings.learningRate)
        var g = [Float](repeating: 0, count: params.count)
        let batch = images.count / network.spec.input.count
        for _ in 0..<settings.steps {
            _ = network.gradient(parameters: params, images: images, masks: masks, batch: batch, into: &g)
            adam.update(parameters: &params, gradient: g, state: &state)
        }
        return params
    }

    /// Supervised joint training on the meta-train tasks with the data budget of `steps`
    /// meta-steps: the same task samples meta-training draws (support and query images of
    /// each meta-batch's tasks, all labelled), in mini-batches of `batch`, with Adam.
    /// Returns model parameters. `progress(done, total)` is called after each step.
    public static func jointTraining(config: TrainingConfig, source: TaskSource, trainTasks: [Int], steps: Int,
                                     learningRate: Float, initial: [Float],
                                     progress: (Int, Int) -> Void = { _, _ in }) throws -> [Float] {
        let network = try Network<Float>(spec: config.meta.model, capacity: config.meta.supportShots)
        let batch = config.meta.supportShots
        var params = initial
        var state = Adam.State(count: params.count)
        let adam = Adam(learningRate: learningRate)
        var g = [Float](repeating: 0, count: params.count)
        for step in 0..<steps {
            let refs = TaskSampler.metaBatch(step: step, seed: config.seed, pool: trainTasks, size: config.metaBatch)
            for ref in refs {
                let s = try source.sample(task: ref.task, index: ref.index, seed: config.seed,
                                          support: config.meta.supportShots, query: config.meta.queryShots)
                for (images, masks, count) in [(s.supportImages, s.supportMasks, s.supportCount), (s.queryImages, s.queryMasks, s.queryCount)] {
                    var start = 0
                    while start < count {
                        let n = min(batch, count - start)
                        let per = s.shape.count, plane = s.shape.plane
                        _ = network.gradient(parameters: params, images: Array(images[(start * per)..<((start + n) * per)]),
                                             masks: Array(masks[(start * plane)..<((start + n) * plane)]), batch: n, into: &g)
                        adam.update(parameters: &params, gradient: g, state: &state)
                        start += n
                    }
                }
            }
            progress(step + 1, steps)
        }
        return params
    }
}
