import Evaluation
import MetaLearning

/// The task universe's plans: meta-learning recipes that spend the budget on many outer steps,
/// and baselines that stay strong there (a multi-class transfer model, and a head per task
/// type where the types are finite). Every candidate has the same number of adaptation
/// settings (six); a protocol that varies the number of adaptation steps (the regime map)
/// takes each setting at every step count.
extension StudyPlan {
    /// The meta-learned initialisation's settings: its own inner rule at three rate scales,
    /// and Adam fine-tuning at three rates (from the prototype head when it was meta-learned
    /// with one).
    public static let universeMAMLGrid: [AdaptationSetting] =
        [1, 2, 4].map { AdaptationSetting.inner(steps: 5, rateScale: Float($0)) }
            + [1e-3, 3e-3, 1e-2].map { AdaptationSetting.fineTune(.init(steps: 100, learningRate: Float($0))) }

    /// A trained body with a new head: the head alone, or everything, from the prototype head
    /// or from the mean of the trained heads.
    public static let universeTransferGrid: [AdaptationSetting] = [true, false].flatMap { proto in
        [AdaptationSetting.fineTune(.init(steps: 100, learningRate: 3e-2, headOnly: true, prototypeHead: proto))]
            + [1e-3, 3e-3].map { AdaptationSetting.fineTune(.init(steps: 100, learningRate: Float($0), prototypeHead: proto)) }
    }

    /// The random initialisation fine-tuned at three rates, from the prototype head or not.
    public static let universeScratchGrid: [AdaptationSetting] = [true, false].flatMap { proto in
        [1e-3, 3e-3, 1e-2].map { AdaptationSetting.fineTune(.init(steps: 100, learningRate: Float($0), prototypeHead: proto)) }
    }

    /// The recipes for the universe: Proto-ANIL (exact second order on the head, the body
    /// meta-learned; two forward and backward passes a task), first-order Proto-MAML, MAML++,
    /// each of the first two with meta-augmentation too, Proto-ANIL from the multi-class
    /// transfer model (half the budget on that model first), and Proto-MAML with no inner
    /// steps in meta-training: episodic training of the prototype head itself (Prototypical
    /// Networks, Snell et al. 2017, as PANet uses them for segmentation, with a meta-learned
    /// head added to the prototypes), with and without meta-augmentation.
    public static let universeRecipes: [Candidate] = [
        .init(name: "protonet", family: .maml,
              training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true, innerSteps: 0)), grid: universeMAMLGrid),
        .init(name: "protonet+aug", family: .maml,
              training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true, innerSteps: 0, metaAugmentation: true)),
              grid: universeMAMLGrid),
        .init(name: "protoanil-second", family: .maml,
              training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true)), grid: universeMAMLGrid),
        .init(name: "protoanil-second+aug", family: .maml,
              training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true, metaAugmentation: true)),
              grid: universeMAMLGrid),
        .init(name: "protomaml-first", family: .maml,
              training: .meta(.init(order: .first, prototypeHead: true)), grid: universeMAMLGrid),
        .init(name: "protomaml-first+aug", family: .maml,
              training: .meta(.init(order: .first, prototypeHead: true, metaAugmentation: true)), grid: universeMAMLGrid),
        .init(name: "maml++-second", family: .maml,
              training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true)), grid: universeMAMLGrid),
        .init(name: "meta-transfer-multiclass", family: .maml,
              training: .meta(.init(order: .second, warmStart: .transferMultiClass, headOnlyInnerLoop: true, prototypeHead: true)),
              grid: universeMAMLGrid),
    ]

    /// The universe's baselines at joint learning rate `rate`: multi-class transfer, a head
    /// per task type (only when the types are finite: unbounded types have no fixed heads),
    /// and scratch.
    public static func universeBaselines(rates: [Float], finiteTypes: Bool) -> [Candidate] {
        rates.flatMap { rate in
            [Candidate(name: "transfer-multiclass@\(rate)", family: .transferMultiClass,
                       training: .joint(heads: .multiClass, learningRate: rate), grid: universeTransferGrid)]
                + (finiteTypes ? [Candidate(name: "transfer-heads@\(rate)", family: .transferHeads,
                                            training: .joint(heads: .perTask, learningRate: rate), grid: universeTransferGrid)] : [])
        } + [Candidate(name: "scratch", family: .scratch, training: .none, grid: universeScratchGrid)]
    }

    /// The universe's plan: `recipes` (default: all) against the baselines at two joint
    /// learning rates each.
    public static func universe(recipes: [Candidate] = universeRecipes, finiteTypes: Bool) -> StudyPlan {
        StudyPlan(candidates: recipes + universeBaselines(rates: [1e-3, 3e-3], finiteTypes: finiteTypes))
    }
}
