import Evaluation
import MetaLearning

/// The plans the study and the demo run, and the adaptation grids every candidate gets.
extension StudyPlan {
    /// The same number of settings for every candidate (9). MAML's: its inner SGD steps as
    /// trained (5), longer at larger rates (40 at 2x, 100 at 4x), and Adam fine-tuning of the
    /// meta-learned initialisation for 50 or 100 steps at three rates. (Its old grid, 5, 15 or
    /// 40 inner steps at 0.5-2x, under-adapted: the choice sat at its edge on meta-validation.)
    public static let mamlGrid = mamlGrid(trainedSteps: 5)
    /// The same for a recipe that meta-trains with `trainedSteps` inner steps: its first
    /// setting is its own inner loop.
    public static func mamlGrid(trainedSteps: Int) -> [AdaptationSetting] {
        [(trainedSteps, 1), (40, 2), (100, 4)].map { AdaptationSetting.inner(steps: $0.0, rateScale: Float($0.1)) }
            + [50, 100].flatMap { s in [1e-3, 3e-3, 1e-2].map { AdaptationSetting.fineTune(.init(steps: s, learningRate: Float($0))) } }
    }
    /// The baselines': fine-tuning steps and rates.
    public static func fineTuneGrid(rates: [Float]) -> [AdaptationSetting] {
        [20, 50, 100].flatMap { s in rates.map { AdaptationSetting.fineTune(.init(steps: s, learningRate: $0)) } }
    }
    /// A new head on a jointly trained body: the head alone, or everything; with
    /// `prototypeHead`, starting from the support set's prototype head added to the new head.
    public static func headGrid(prototypeHead: Bool = false) -> [AdaptationSetting] {
        [3e-3, 1e-2, 3e-2].map { AdaptationSetting.fineTune(.init(steps: 50, learningRate: $0, headOnly: true, prototypeHead: prototypeHead)) }
            + [20, 50, 100].flatMap { s in
                [3e-4, 1e-3].map { AdaptationSetting.fineTune(.init(steps: s, learningRate: Float($0), prototypeHead: prototypeHead)) }
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
    public static func standard(pretraining: Bool, unionTasks: Bool = false) -> StudyPlan {
        var c: [Candidate] = [
            .init(name: "maml-second", family: .maml, training: .meta(.init(order: .second)), grid: mamlGrid),
            .init(name: "maml-first", family: .maml, training: .meta(.init(order: .first)), grid: mamlGrid),
            .init(name: "maml++-second", family: .maml,
                  training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true)), grid: mamlGrid),
            .init(name: "meta-transfer", family: .maml,
                  training: .meta(.init(order: .second, warmStart: .transferHeads)), grid: mamlGrid),
            .init(name: "anil-second", family: .maml,
                  training: .meta(.init(order: .second, headOnlyInnerLoop: true)), grid: mamlGrid),
            .init(name: "maml-second+pseudo", family: .maml,
                  training: .meta(.init(order: .second, pseudoTasks: true)), grid: mamlGrid),
            .init(name: "reptile", family: .maml, training: .meta(.init(order: .reptile)), grid: mamlGrid),
            .init(name: "protomaml++-second", family: .maml,
                  training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, prototypeHead: true)),
                  grid: mamlGrid),
            .init(name: "protoanil-second", family: .maml,
                  training: .meta(.init(order: .second, headOnlyInnerLoop: true, prototypeHead: true)), grid: mamlGrid),
        ]
        // MAML++ with twice the inner steps in meta-training (the test-time grid's best
        // settings run far longer inner loops than the 5 it is trained with).
        c.append(.init(name: "maml++-second-10steps", family: .maml,
                       training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, innerSteps: 10)),
                       grid: mamlGrid(trainedSteps: 10)))
        if unionTasks {
            c.append(.init(name: "maml++-second+union", family: .maml,
                           training: .meta(.init(order: .second, learnedInnerRates: true, multiStepLoss: true, unionTasks: true)),
                           grid: mamlGrid))
        }
        for rate: Float in [1e-3, 3e-3] {
            c += transferHeads(rate: rate)
            c.append(.init(name: "transfer@\(rate)", family: .transfer,
                           training: .joint(heads: .shared, learningRate: rate), grid: fineTuneGrid(rates: [3e-4, 1e-3, 3e-3])))
        }
        c.append(.init(name: "scratch", family: .scratch, training: .none, grid: fineTuneGrid(rates: [1e-3, 3e-3, 1e-2])))
        if pretraining {
            c.append(.init(name: "pretrained-maml-second", family: .pretrainedMAML,
                           training: .meta(.init(order: .second, warmStart: .pretrain)), grid: mamlGrid))
            c.append(.init(name: "pretrained-masked-maml-second", family: .pretrainedMAML,
                           training: .meta(.init(order: .second, warmStart: .pretrainMasked)), grid: mamlGrid))
        }
        return StudyPlan(candidates: c)
    }

    /// The per-task-heads transfer baseline at one joint-training rate, adapted from the mean
    /// of the task heads and from the prototype head added to it: one trained model
    /// (`StudyRunner` trains twins once), two candidates of the family.
    public static func transferHeads(rate: Float) -> [Candidate] {
        [false, true].map { proto in
            .init(name: "transfer-heads\(proto ? "+proto" : "")@\(rate)", family: .transferHeads,
                  training: .joint(heads: .perTask, learningRate: rate), grid: headGrid(prototypeHead: proto))
        }
    }

}
