import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Pretraining
import Training

/// Stage 1: what one training step of each kind costs on this machine, in core-seconds.
extension StudyRunner {
    /// The cost key of a meta-training phase: what one step computes.
    public static func costKey(meta recipe: StudyPlan.MetaRecipe) -> String {
        "meta-\(recipe.order.rawValue)\(recipe.learnedInnerRates ? "+lslr" : "")\(recipe.multiStepLoss ? "+msl" : "")"
            + (recipe.headOnlyInnerLoop ? "+head" : "") + (recipe.pseudoTasks ? "+pseudo" : "") + (recipe.prototypeHead ? "+proto" : "")
            + (recipe.unionTasks ? "+union" : "") + (recipe.innerSteps.map { "+steps\($0)" } ?? "") + (recipe.metaAugmentation ? "+aug" : "")
    }

    /// The cost key of a joint-training phase.
    public static func costKey(joint heads: JointTraining.Heads) -> String { "joint-\(heads.rawValue)" }

    /// The cost key of a warm start's phase.
    public static func costKey(warmStart: StudyPlan.WarmStart) -> String {
        switch warmStart {
        case .transferHeads: costKey(joint: .perTask)
        case .transferMultiClass: costKey(joint: .multiClass)
        case .pretrain: "pretrain"
        case .pretrainMasked: "pretrain-masked"
        }
    }

    func calibrate() throws {
        if let given = settings.costs { state.stepCost = given }
        var keys: [String: () throws -> Double] = [:]
        for c in plan.candidates {
            switch c.training {
            case .none: break
            case .joint(let heads, _): keys[Self.costKey(joint: heads)] = { try self.measureJoint(heads) }
            case .meta(let recipe):
                keys[Self.costKey(meta: recipe)] = {
                    let (dataset, source) = try self.metaTrainingData(recipe)
                    return try self.measureMeta(recipe, source: source, dataset: dataset, split: self.settings.split)
                }
                guard let warm = recipe.warmStart else { continue }
                keys[Self.costKey(warmStart: warm)] = {
                    switch warm {
                    case .transferHeads: return try self.measureJoint(.perTask)
                    case .transferMultiClass: return try self.measureJoint(.multiClass)
                    case .pretrain: return try self.measurePretrain()
                    case .pretrainMasked:
                        let masked = try self.reconstructionSource()
                        return try self.measureJoint(.shared, source: masked, tasks: Array(masked.taskNames.indices))
                    }
                }
            }
        }
        for key in keys.keys.sorted() where state.stepCost[key] == nil {
            guard let measure = keys[key] else { continue }
            let cost = try measure()
            state.stepCost[key] = cost
            say("calibration: one \(key) step costs \(String(format: "%.3f", cost)) core-seconds")
        }
    }

    /// Seconds per step on one thread, the median of three steps after a warm-up step.
    private func median(_ times: [Double]) throws -> Double {
        guard !times.isEmpty else { throw StudyError("calibration timed no training step (was the run stopped?)") }
        return times.sorted()[times.count / 2]
    }

    private func measureMeta(_ recipe: StudyPlan.MetaRecipe, source: TaskSource, dataset: DatasetSpec, split: TaskSplit) throws -> Double {
        let config = metaConfig(recipe, steps: 4)
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: split, evaluation: EvaluationSpec())
        let folder = settings.out + "/calibration"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let run = try TrainingRun(spec: spec, source: source, backend: InProcessBackend(threads: 1),
                                  outputs: RunOutputs(checkpointFolder: folder), logger: logger)
        var times: [Double] = []
        run.onStep = { report, _ in times.append(report.seconds) }
        _ = try run.run()
        return try median(Array(times.dropFirst()))
    }

    func measureJoint(_ heads: JointTraining.Heads, source: TaskSource? = nil, tasks: [Int]? = nil) throws -> Double {
        let joint = JointTraining(config: settings.base, source: source ?? self.source, trainTasks: tasks ?? partition.train,
                                  settings: .init(heads: heads, learningRate: 1e-3, steps: 4))
        var times: [Double] = []
        var clock = MonotonicClock()
        _ = try joint.train(initial: randomInitial()) { _, _ in
            times.append(clock.now)
            clock = MonotonicClock()
            return true
        }
        return try median(Array(times.dropFirst()))
    }

    private func measurePretrain() throws -> Double {
        let (spec, pseudo) = try pretrainingSource()
        return try measureMeta(.init(order: settings.base.meta.order), source: pseudo, dataset: spec, split: pseudo.defaultSplit)
    }

    /// What a recipe meta-trains on: the study's tasks, with pseudo-tasks or union tasks
    /// beside them if the recipe asks for them.
    func metaTrainingData(_ recipe: StudyPlan.MetaRecipe) throws -> (DatasetSpec, TaskSource) {
        if recipe.pseudoTasks, let pseudoAugmented { return pseudoAugmented }
        if recipe.unionTasks, let unionAugmented { return unionAugmented }
        if recipe.metaAugmentation {
            guard let augmentedUniverse else { throw StudyError("meta-augmentation needs the task universe (--dataset universe)") }
            return augmentedUniverse
        }
        return (settings.dataset, source)
    }

    /// The superpixel pseudo-tasks on the dataset's unlabelled images.
    func pretrainingSource() throws -> (DatasetSpec, TaskSource) {
        let path = settings.dataset.kind == .synthetic ? settings.dataset.name : settings.dataset.path
        return try DatasetSpec.openPseudo(path, options: settings.dataset.options, pseudo: PseudoTaskOptions(),
                                          includeTraining: true, logger: logger)
    }

    /// The masked-reconstruction pretext on the same unlabelled images as the pseudo-tasks.
    func reconstructionSource() throws -> MaskedReconstructionSource {
        guard let pseudo = try pretrainingSource().1 as? PseudoTaskSource else { throw StudyError("no unlabelled images to pretrain on") }
        return try MaskedReconstructionSource(images: pseudo.images)
    }
}
