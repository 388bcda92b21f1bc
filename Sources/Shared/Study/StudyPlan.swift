import Evaluation
import Foundation
import MetaLearning

/// What a study compares: candidate methods grouped in families. Every candidate is trained
/// (if it trains) with the same compute budget, every candidate gets the same number of
/// adaptation settings tried on meta-validation, the best setting of each candidate and the
/// best candidate of each family are chosen there, and only the chosen ones meet the
/// meta-test tasks, once.
public struct StudyPlan: Codable, Sendable, Equatable {
    /// How a candidate comes by its starting parameters.
    public enum Training: Codable, Sendable, Equatable {
        /// None: the random initialisation.
        case none
        /// Meta-training with a recipe, from the random initialisation or, for half the
        /// budget, from the model another candidate trains in the first half.
        case meta(MetaRecipe)
        /// Ordinary supervised training on the meta-train tasks.
        case joint(heads: JointTraining.Heads, learningRate: Float)
    }

    /// What a meta-training recipe spends the first half of its budget on before
    /// meta-training from the result.
    public enum WarmStart: String, Codable, Sendable, CaseIterable {
        /// Joint training with a head per task (meta-transfer).
        case transferHeads = "transfer-heads"
        /// Self-supervised superpixel pseudo-tasks, meta-trained.
        case pretrain
        /// Masked-image reconstruction with denoising, jointly trained.
        case pretrainMasked = "pretrain-masked"
        /// Multi-class training on full label maps (the task universe's transfer model).
        case transferMultiClass = "transfer-multiclass"
    }

    /// A meta-training recipe (MAML and the MAML++ options).
    public struct MetaRecipe: Codable, Sendable, Equatable {
        public var order: MetaOrder
        public var learnedInnerRates = false
        public var multiStepLoss = false
        public var metaLearningRate: Float = 1e-3
        /// Spend the first half of the budget on this before meta-training from its result.
        public var warmStart: WarmStart?
        /// ANIL: the inner loop adapts only the output head.
        public var headOnlyInnerLoop = false
        /// Task augmentation: superpixel pseudo-tasks on the meta-train tasks' images are
        /// sampled beside the labelled tasks (`PseudoAugmentedSource`).
        public var pseudoTasks = false
        /// Proto-MAML: every task starts from its support set's prototype head added to the
        /// meta-learned one (`PrototypeHead`).
        public var prototypeHead = false
        /// Task augmentation: union tasks (two meta-train structures labelled on the same
        /// images, united) are sampled beside the labelled tasks (`UnionAugmentedSource`).
        public var unionTasks = false
        /// Inner SGD steps in meta-training, when not the study's (`--inner-steps`).
        public var innerSteps: Int?
        /// Meta-augmentation (task universe): foreground and background swapped in half the
        /// meta-train samples.
        public var metaAugmentation = false

        public init(order: MetaOrder, learnedInnerRates: Bool = false, multiStepLoss: Bool = false, metaLearningRate: Float = 1e-3,
             warmStart: WarmStart? = nil, headOnlyInnerLoop: Bool = false, pseudoTasks: Bool = false, prototypeHead: Bool = false,
             unionTasks: Bool = false, innerSteps: Int? = nil, metaAugmentation: Bool = false) {
            self.order = order
            self.learnedInnerRates = learnedInnerRates
            self.multiStepLoss = multiStepLoss
            self.metaLearningRate = metaLearningRate
            self.warmStart = warmStart
            self.headOnlyInnerLoop = headOnlyInnerLoop
            self.pseudoTasks = pseudoTasks
            self.prototypeHead = prototypeHead
            self.unionTasks = unionTasks
            self.innerSteps = innerSteps
            self.metaAugmentation = metaAugmentation
        }

        /// Studies saved before `headOnlyInnerLoop`, `pseudoTasks`, `prototypeHead`,
        /// `unionTasks` and `innerSteps` existed resume with the full inner loop, the labelled
        /// tasks alone, the learned head and the study's inner steps.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            order = try c.decode(MetaOrder.self, forKey: .order)
            learnedInnerRates = try c.decode(Bool.self, forKey: .learnedInnerRates)
            multiStepLoss = try c.decode(Bool.self, forKey: .multiStepLoss)
            metaLearningRate = try c.decode(Float.self, forKey: .metaLearningRate)
            warmStart = try c.decodeIfPresent(WarmStart.self, forKey: .warmStart)
            headOnlyInnerLoop = try c.decodeIfPresent(Bool.self, forKey: .headOnlyInnerLoop) ?? false
            pseudoTasks = try c.decodeIfPresent(Bool.self, forKey: .pseudoTasks) ?? false
            prototypeHead = try c.decodeIfPresent(Bool.self, forKey: .prototypeHead) ?? false
            unionTasks = try c.decodeIfPresent(Bool.self, forKey: .unionTasks) ?? false
            innerSteps = try c.decodeIfPresent(Int.self, forKey: .innerSteps)
            metaAugmentation = try c.decodeIfPresent(Bool.self, forKey: .metaAugmentation) ?? false
        }
    }

    /// A method competing for its family: how it trains, and the adaptation settings tried
    /// on meta-validation.
    public struct Candidate: Codable, Sendable, Equatable {
        public var name: String
        public var family: Family
        public var training: Training
        public var grid: [AdaptationSetting]

        public init(name: String, family: Family, training: Training, grid: [AdaptationSetting]) {
            self.name = name
            self.family = family
            self.training = training
            self.grid = grid
        }
    }

    public var candidates: [Candidate]

    public init(candidates: [Candidate]) { self.candidates = candidates }
}

extension StudyPlan {
    /// The plan with only the candidates named in `list` (comma-separated); an unknown name
    /// is refused with the plan's names.
    public func selecting(_ list: String) throws -> StudyPlan {
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if let unknown = names.first(where: { n in !candidates.contains { $0.name == n } }) {
            throw StudyError("no candidate \(unknown); the plan has \(candidates.map(\.name).joined(separator: ", "))")
        }
        var plan = self
        plan.candidates = candidates.filter { names.contains($0.name) }
        return plan
    }
}
