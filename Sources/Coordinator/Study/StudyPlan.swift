import Evaluation
import Foundation
import MetaLearning

/// What a study compares: candidate methods grouped in families. Every candidate is trained
/// (if it trains) with the same compute budget, every candidate gets the same number of
/// adaptation settings tried on meta-validation, the best setting of each candidate and the
/// best candidate of each family are chosen there, and only the chosen ones meet the
/// meta-test tasks, once.
struct StudyPlan: Codable, Sendable, Equatable {
    /// How a candidate comes by its starting parameters.
    enum Training: Codable, Sendable, Equatable {
        /// None: the random initialisation.
        case none
        /// Meta-training with a recipe, from the random initialisation or, for half the
        /// budget, from the model another candidate trains in the first half.
        case meta(MetaRecipe)
        /// Ordinary supervised training on the meta-train tasks.
        case joint(heads: JointTraining.Heads, learningRate: Float)
    }

    /// A meta-training recipe (MAML and the MAML++ options).
    struct MetaRecipe: Codable, Sendable, Equatable {
        var order: MetaOrder
        var learnedInnerRates = false
        var multiStepLoss = false
        var metaLearningRate: Float = 1e-3
        /// Spend the first half of the budget on this before meta-training from its result:
        /// `transfer-heads` (meta-transfer), `pretrain` (self-supervised superpixel tasks) or
        /// `pretrain-masked` (masked-image reconstruction with denoising).
        var warmStart: String?
        /// ANIL: the inner loop adapts only the output head.
        var headOnlyInnerLoop = false
        /// Task augmentation: superpixel pseudo-tasks on the meta-train tasks' images are
        /// sampled beside the labelled tasks (`PseudoAugmentedSource`).
        var pseudoTasks = false
        /// Proto-MAML: every task starts from its support set's prototype head added to the
        /// meta-learned one (`PrototypeHead`).
        var prototypeHead = false
        /// Task augmentation: union tasks (two meta-train structures labelled on the same
        /// images, united) are sampled beside the labelled tasks (`UnionAugmentedSource`).
        var unionTasks = false
        /// Inner SGD steps in meta-training, when not the study's (`--inner-steps`).
        var innerSteps: Int?

        init(order: MetaOrder, learnedInnerRates: Bool = false, multiStepLoss: Bool = false, metaLearningRate: Float = 1e-3,
             warmStart: String? = nil, headOnlyInnerLoop: Bool = false, pseudoTasks: Bool = false, prototypeHead: Bool = false,
             unionTasks: Bool = false, innerSteps: Int? = nil) {
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
        }

        /// Studies saved before `headOnlyInnerLoop`, `pseudoTasks`, `prototypeHead`,
        /// `unionTasks` and `innerSteps` existed resume with the full inner loop, the labelled
        /// tasks alone, the learned head and the study's inner steps.
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            order = try c.decode(MetaOrder.self, forKey: .order)
            learnedInnerRates = try c.decode(Bool.self, forKey: .learnedInnerRates)
            multiStepLoss = try c.decode(Bool.self, forKey: .multiStepLoss)
            metaLearningRate = try c.decode(Float.self, forKey: .metaLearningRate)
            warmStart = try c.decodeIfPresent(String.self, forKey: .warmStart)
            headOnlyInnerLoop = try c.decodeIfPresent(Bool.self, forKey: .headOnlyInnerLoop) ?? false
            pseudoTasks = try c.decodeIfPresent(Bool.self, forKey: .pseudoTasks) ?? false
            prototypeHead = try c.decodeIfPresent(Bool.self, forKey: .prototypeHead) ?? false
            unionTasks = try c.decodeIfPresent(Bool.self, forKey: .unionTasks) ?? false
            innerSteps = try c.decodeIfPresent(Int.self, forKey: .innerSteps)
        }
    }

    /// An adaptation setting tried on meta-validation.
    enum Adaptation: Codable, Sendable, Equatable, CustomStringConvertible {
        /// Inner SGD steps with the (learned or fixed) inner rates scaled.
        case inner(steps: Int, rateScale: Float)
        /// Adam fine-tuning.
        case fineTune(Baselines.FineTune)

        /// This setting applied to trained meta-parameters `meta` (the model's `modelCount`
        /// values first, then any learned inner rates): the inner rule runs on all of them,
        /// Adam fine-tunes the model's part (from the prototype head, as the inner loop
        /// starts, when the parameters were meta-learned with one).
        func adaptation(meta: [Float], config: MetaConfig, modelCount: Int) -> MetaTest.Adaptation {
            switch self {
            case .inner(let steps, let scale): return .maml(meta: meta, config: config, steps: steps, rateScale: scale)
            case .fineTune(var f):
                f.prototypeHead = f.prototypeHead || config.prototypeHead
                return .fineTune(start: Array(meta.prefix(modelCount)), settings: f)
            }
        }

        var description: String {
            switch self {
            case .inner(let steps, let scale): "\(steps) inner steps, rates x\(scale)"
            case .fineTune(let f):
                "Adam \(f.steps) steps at \(f.learningRate)\(f.headOnly ? ", head only" : "")\(f.prototypeHead ? ", from the prototype head" : "")"
            }
        }
    }

    struct Candidate: Codable, Sendable, Equatable {
        var name: String
        /// The family it competes in: `maml`, `transfer`, `transfer-heads`, `scratch`, or
        /// `pretrained-maml` (the pretraining study).
        var family: String
        var training: Training
        var grid: [Adaptation]
    }

    var candidates: [Candidate]

    /// The families the main comparison reports, in order.
    static let families = ["maml", "transfer-heads", "transfer", "scratch"]

    /// The same number of settings for every candidate (9). MAML's: its inner SGD steps as
    /// trained (5), longer at larger rates (40 at 2x, 100 at 4x), and Adam fine-tuning of the
    /// meta-learned initialisation for 50 or 100 steps at three rates. (Its old grid, 5, 15 or
    /// 40 inner steps at 0.5-2x, under-adapted: the choice sat at its edge on meta-validation.)
    static let mamlGrid = mamlGrid(trainedSteps: 5)
    /// The same for a recipe that meta-trains with `trainedSteps` inner steps: its first
    /// setting is its own inner loop.
    static func mamlGrid(trainedSteps: Int) -> [Adaptation] {
        [(trainedSteps, 1), (40, 2), (100, 4)].map { Adaptation.inner(steps: $0.0, rateScale: Float($0.1)) }
            + [50, 100].flatMap { s in [1e-3, 3e-3, 1e-2].map { Adaptation.fineTune(.init(steps: s, learningRate: Float($0))) } }
    }
    /// The baselines': fine-tuning steps and rates.
    static func fineTuneGrid(rates: [Float]) -> [Adaptation] {
        [20, 50, 100].flatMap { s in rates.map { Adaptation.fineTune(.init(steps: s, learningRate: $0)) } }
    }
    /// A new head on a jointly trained body: the head alone, or everything; with
    /// `prototypeHead`, starting from the support set's prototype head added to the new head.
    static func headGrid(prototypeHead: Bool = false) -> [Adaptation] {
        [3e-3, 1e-2, 3e-2].map { Adaptation.fineTune(.init(steps: 50, learningRate: $0, headOnly: true, prototypeHead: prototypeHead)) }
            + [20, 50, 100].flatMap { s in
                [3e-4, 1e-3].map { Adaptation.fineTune(.init(steps: s, learningRate: Float($0), prototypeHead: prototypeHead)) }
            }
    }

    /// The default plan: ten meta-training recipes, eleven on data whose tasks share images
    /// (first and second order, MAML++, meta-transfer from the per-task-heads model, ANIL:
    /// second order with a head-only inner loop, second order with superpixel pseudo-tasks
    /// beside the labelled tasks, Reptile: the outer step follows the adapted parameters, no
    /// query gradient, Proto-MAML++: MAML++ from each task's prototype head, Proto-ANIL: ANIL
    /// from it, MAML++ with 10 inner steps, and MAML++ with union tasks beside the labelled
    /// ones), the two transfer baselines at two learning rates each, the per-task-heads one
    /// also with its new head started from the prototype head (the same trained model,
    /// adapted the Proto-MAML way), scratch, and (with `pretraining`) pretraining followed by
    /// meta-training, with either pretext (superpixel pseudo-tasks, masked reconstruction;
    /// the family's choice is made on meta-validation).
    static func standard(pretraining: Bool, unionTasks: Bool = false) -> StudyPlan {
        var c: [Candidate] = [
            .init(name: "maml-second", family: "maml", training: .meta(.init(order: .second)), grid: mamlGrid),
            .init(name: "maml-first", family: "maml", training: .meta(.init(order: .first)), grid: mamlGrid),
            .init(name: "maml++-second", family: "maml",
                  training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true)), grid: mamlGrid),
            .init(name: "meta-transfer", family: "maml",
                  training: .meta(.init(order: .second, warmStart: "transfer-heads")), grid: mamlGrid),
            .init(name: "anil-second", family: "maml",
                  training: .meta(.init(order: .second, headOnlyInnerLoop: true)), grid: mamlGrid),
            .init(name: "maml-second+pseudo", family: "maml",
                  training: .meta(.init(order: .second, pseudoTasks: true)), grid: mamlGrid),
            .init(name: "reptile", family: "maml", training: .meta(.init(order: .reptile)), grid: mamlGrid),
            .init(name: "protomaml++-second", family: "maml",
                  training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, prototypeHead: true)),
                  grid: mamlGrid),
            .init(name: "protoanil-second", family: "maml",
                  training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true)), grid: mamlGrid),
        ]
        // MAML++ with twice the inner steps in meta-training (the test-time grid's best
        // settings run far longer inner loops than the 5 it is trained with).
        c.append(.init(name: "maml++-second-10steps", family: "maml",
                       training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, innerSteps: 10)),
                       grid: mamlGrid(trainedSteps: 10)))
        if unionTasks {
            c.append(.init(name: "maml++-second+union", family: "maml",
                           training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, unionTasks: true)),
                           grid: mamlGrid))
        }
        for rate: Float in [1e-3, 3e-3] {
            c += transferHeads(rate: rate)
            c.append(.init(name: "transfer@\(rate)", family: "transfer",
                           training: .joint(heads: .shared, learningRate: rate), grid: fineTuneGrid(rates: [3e-4, 1e-3, 3e-3])))
        }
        c.append(.init(name: "scratch", family: "scratch", training: .none, grid: fineTuneGrid(rates: [1e-3, 3e-3, 1e-2])))
        if pretraining {
            c.append(.init(name: "pretrained-maml-second", family: "pretrained-maml",
                           training: .meta(.init(order: .second, warmStart: "pretrain")), grid: mamlGrid))
            c.append(.init(name: "pretrained-masked-maml-second", family: "pretrained-maml",
                           training: .meta(.init(order: .second, warmStart: "pretrain-masked")), grid: mamlGrid))
        }
        return StudyPlan(candidates: c)
    }

    /// The per-task-heads transfer baseline at one joint-training rate, adapted from the mean
    /// of the task heads and from the prototype head added to it: one trained model
    /// (`StudyRunner` trains twins once), two candidates of the family.
    static func transferHeads(rate: Float) -> [Candidate] {
        [false, true].map { proto in
            .init(name: "transfer-heads\(proto ? "+proto" : "")@\(rate)", family: "transfer-heads",
                  training: .joint(heads: .perTask, learningRate: rate), grid: headGrid(prototypeHead: proto))
        }
    }

    /// The demo's plan: one meta-learning recipe against the two transfer baselines (joint
    /// training at `transferLearningRate`) and scratch, with the standard grids. A recipe
    /// that adapts from the prototype head meets the per-task-heads baseline adapted both ways.
    static func demo(maml: Candidate, transferLearningRate rate: Float) -> StudyPlan {
        var prototypeHead = false
        if case .meta(let recipe) = maml.training { prototypeHead = recipe.prototypeHead }
        let heads = transferHeads(rate: rate)
        return StudyPlan(candidates: [maml] + (prototypeHead ? heads : [heads[0]]) + [
            .init(name: "transfer@\(rate)", family: "transfer", training: .joint(heads: .shared, learningRate: rate),
                  grid: fineTuneGrid(rates: [3e-4, 1e-3, 3e-3])),
            .init(name: "scratch", family: "scratch", training: .none, grid: fineTuneGrid(rates: [1e-3, 3e-3, 1e-2])),
        ])
    }
}
