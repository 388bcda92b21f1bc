import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// The baselines the meta-test compares MAML with, computed by the same engine on the same
/// tasks and shots:
/// - **scratch**: the U-Net from a random initialisation, trained on the K support images only;
/// - **transfer**: the U-Net trained jointly (ordinary supervised training, `JointTraining`)
///   on images of all meta-train tasks with one shared output head, then fine-tuned on the
///   K support images;
/// - **transfer, a head per task**: the same with one output head per meta-train task (no
///   conflicting labels for one head), then a new head (the mean of the task heads) and
///   optionally the rest fine-tuned on the K support images.
public enum Baselines {
    /// Fine-tuning settings for the K support images (full batch, Adam).
    public struct FineTune: Codable, Hashable, Sendable {
        public var steps: Int
        public var learningRate: Float
        /// Fine-tune only the output head (the last layer), keeping the rest as trained.
        public var headOnly: Bool
        /// Start from the support set's prototype head added to the output head
        /// (`PrototypeHead`), as Proto-MAML's inner loop does.
        public var prototypeHead: Bool

        public init(steps: Int, learningRate: Float, headOnly: Bool = false, prototypeHead: Bool = false) {
            self.steps = steps
            self.learningRate = learningRate
            self.headOnly = headOnly
            self.prototypeHead = prototypeHead
        }

        /// Older presets and results decode without `headOnly` and `prototypeHead`.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            steps = try c.decode(Int.self, forKey: .steps)
            learningRate = try c.decode(Float.self, forKey: .learningRate)
            headOnly = try c.decodeIfPresent(Bool.self, forKey: .headOnly) ?? false
            prototypeHead = try c.decodeIfPresent(Bool.self, forKey: .prototypeHead) ?? false
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

    /// Adam on the support loss from `start` (model parameters only; with `headOnly`, the
    /// output head's alone; with `prototypeHead`, from the support set's prototype head added
    /// to the output head).
    public static func fineTune(network: Network<Float>, start: [Float], images: [Float], masks: [Float],
                                settings: FineTune) -> [Float] {
        fineTune(network: network, start: start, images: images, masks: masks, settings: settings, checkpoints: [settings.steps])[0]
    }

    /// The parameters after each of `checkpoints` Adam steps (`settings.steps` is ignored),
    /// from one run to the largest: step i never depends on how many follow it, so each is
    /// what fine-tuning for that many steps gives. Results are in the order of `checkpoints`.
    public static func fineTune(network: Network<Float>, start: [Float], images: [Float], masks: [Float],
                                settings: FineTune, checkpoints: [Int]) -> [[Float]] {
        precondition(!checkpoints.isEmpty && checkpoints.allSatisfy { $0 >= 0 }, "checkpoints must be step counts")
        let tuned = settings.headOnly ? network.spec.headRange(network.layout) : 0..<start.count
        var params = start
        if settings.prototypeHead {
            network.addPrototypeHead(parameters: &params, images: images, masks: masks,
                                     batch: images.count / network.spec.input.count)
        }
        var state = Adam.State(count: tuned.count)
        let adam = Adam(learningRate: settings.learningRate)
        var g = [Float](repeating: 0, count: params.count)
        let batch = images.count / network.spec.input.count
        var out = checkpoints.map { $0 == 0 ? params : [] }
        for step in 0..<checkpoints.max()! {
            _ = network.gradient(parameters: params, images: images, masks: masks, batch: batch, into: &g)
            adam.update(parameters: &params, range: tuned, gradient: g, state: &state)
            for (c, k) in checkpoints.enumerated() where k == step + 1 { out[c] = params }
        }
        return out
    }
}
