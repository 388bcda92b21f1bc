import Cluster
import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Training

/// Stage 2: every candidate trained for the same budget, with snapshots along the way.
extension StudyRunner {
    func trainAll() throws {
        // Joint-training candidates run one thread each, side by side: each is sequential
        // SGD, independent of the others, so running them together changes no result.
        // Candidates that train the same model (twins, adapted differently) train it once.
        let joint = plan.candidates.enumerated().filter { index, candidate in
            guard case .joint = candidate.training, state.trained[candidate.name] == nil else { return false }
            return !plan.candidates[..<index].contains { $0.training == candidate.training }
        }.map(\.element)
        if joint.count > 1 && settings.threads > 1 {
            try stage("training \(joint.map(\.name).joined(separator: " and "))") {
                // They draw the same samples (the same seed and meta-batches): each is rendered once.
                let shared = SharedSamples(source, readers: min(settings.threads, joint.count))
                let pool = ComputePool<Void, Int, Result<StudyState.Trained, Error>>(threads: min(settings.threads, joint.count)) { _ in () }
                let results = pool.run(Array(joint.indices)) { _, i, _ in Result { try self.train(joint[i], source: shared) } }
                for (candidate, result) in zip(joint, results) { state.trained[candidate.name] = try result.get() }
                let counts = shared.statistics
                logger.debug("joint training side by side: \(counts.rendered) samples rendered, \(counts.shared) shared")
            }
        }
        for candidate in plan.candidates where state.trained[candidate.name] == nil {
            if let twin = plan.candidates.first(where: { $0.training == candidate.training && state.trained[$0.name] != nil }) {
                state.trained[candidate.name] = state.trained[twin.name]
                continue
            }
            try stage("training \(candidate.name)") { state.trained[candidate.name] = try train(candidate) }
        }
    }

    /// The random initialisation every candidate starts from.
    func randomInitial() -> [Float] {
        (try? MetaLayout(config: settings.base.meta))!.model.initialValues(seed: settings.base.initSeed ?? settings.base.seed)
    }

    /// The training configuration of a meta-training recipe with `steps` outer steps.
    func metaConfig(_ recipe: StudyPlan.MetaRecipe, steps: Int) -> TrainingConfig {
        var c = settings.base
        c.meta.order = recipe.order
        c.meta.learnedInnerRates = recipe.learnedInnerRates
        c.meta.multiStepLoss = recipe.multiStepLoss
        c.meta.headOnlyInnerLoop = recipe.headOnlyInnerLoop
        c.meta.prototypeHead = recipe.prototypeHead
        if let innerSteps = recipe.innerSteps { c.meta.innerSteps = innerSteps }
        c.meta.multiStepAnnealSteps = max(steps / 2, 1)
        c.optimizer = Adam(learningRate: recipe.metaLearningRate)
        c.optimizer.cosineSteps = steps
        c.steps = steps
        return c
    }

    /// The calibrated cost of a key; a study always calibrates before it trains.
    private func cost(_ key: String) throws -> Double {
        guard let cost = stateLock.withLock({ state.stepCost[key] }) else { throw StudyError("no calibrated cost for \(key)") }
        return cost
    }

    /// Trains a candidate; joint training reads its samples from `jointSource` (the study's by
    /// default; a shared cache when candidates train side by side).
    func train(_ candidate: StudyPlan.Candidate, source jointSource: TaskSource? = nil) throws -> StudyState.Trained {
        let budget = settings.budget, metaBatch = settings.base.metaBatch
        let recorder = SnapshotRecorder(runner: self, candidate: candidate.name)
        let modelLayout = try MetaLayout(config: settings.base.meta)
        switch candidate.training {
        case .none:
            recorder.record(0, randomInitial(), layout: modelLayout, spent: .zero)

        case .joint(let heads, let rate):
            let phase = TrainingPhase(cost: try cost(Self.costKey(joint: heads)), seconds: budget, metaBatch: metaBatch,
                                      fractions: settings.fractions)
            // Multi-class training reads label maps from the source itself (a shared cache
            // holds task samples only).
            _ = try jointTraining(heads: heads, rate: rate, steps: phase.steps,
                                  source: heads == .multiClass ? source : jointSource ?? source) { step, model in
                recorder.reached(step, of: phase, model.parameters, layout: modelLayout)
            }

        case .meta(let recipe):
            var initial = randomInitial()
            var before = TrainingPhase.Spent.zero
            var metaBudget = budget
            if let warm = recipe.warmStart {
                // Half the budget on the warm start, half on meta-training from its result.
                let half = budget / 2
                metaBudget = budget - half
                let phase = TrainingPhase(cost: try cost(Self.costKey(warmStart: warm)), seconds: half, metaBatch: metaBatch,
                                          fractions: settings.fractions, within: 0.5)
                initial = try warmStart(warm, phase: phase, recorder: recorder, layout: modelLayout)
                before = phase.spent(at: phase.steps)
            }
            let phase = TrainingPhase(cost: try cost(Self.costKey(meta: recipe)), seconds: metaBudget, metaBatch: metaBatch,
                                      fractions: settings.fractions, from: recipe.warmStart == nil ? 0 : 0.5, before: before)
            let config = metaConfig(recipe, steps: phase.steps)
            let layout = try MetaLayout(config: config.meta)
            var start = layout.initialValues(seed: settings.base.seed, innerLearningRate: config.meta.innerLearningRate)
            start.replaceSubrange(0..<layout.model.count, with: initial)
            let (dataset, metaSource) = try metaTrainingData(recipe)
            _ = try metaTrain(config: config, dataset: dataset, source: metaSource, split: settings.split,
                              initial: start, folder: "train-\(candidate.name)") { step, meta, _ in
                recorder.reached(step, of: phase, meta, layout: layout)
            }
        }
        if let error = recorder.error { throw error }
        if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
        let trained = recorder.trained
        guard trained.fractions.count == (candidate.training == StudyPlan.Training.none ? 1 : settings.fractions.count) else {
            throw StudyError("\(candidate.name): a snapshot is missing (\(trained.fractions) of \(settings.fractions))")
        }
        stateLock.withLock { state.partial[candidate.name] = nil }
        return trained
    }

    /// The first half of a warm-started recipe: its model, with snapshots on the way.
    private func warmStart(_ warm: StudyPlan.WarmStart, phase: TrainingPhase, recorder: SnapshotRecorder,
                           layout modelLayout: MetaLayout) throws -> [Float] {
        switch warm {
        case .transferHeads, .transferMultiClass:
            return try jointTraining(heads: warm == .transferHeads ? .perTask : .multiClass, rate: 1e-3, steps: phase.steps,
                                     source: source) { step, model in
                recorder.reached(step, of: phase, model.parameters, layout: modelLayout)
            }.parameters
        case .pretrain:
            let (spec, pseudo) = try pretrainingSource()
            var config = metaConfig(.init(order: settings.base.meta.order), steps: phase.steps)
            // Its own stream of pseudo-tasks, from the same random initialisation as every
            // other candidate, so "pretrained or not" is the only difference.
            config.seed = settings.base.seed &+ 0x5eed
            config.initSeed = settings.base.initSeed ?? settings.base.seed
            let model = try metaTrain(config: config, dataset: spec, source: pseudo, split: pseudo.defaultSplit,
                                      initial: nil, folder: "pretrain-\(recorder.candidate)") { step, meta, metaLayout in
                recorder.reached(step, of: phase, Array(meta.prefix(metaLayout.model.count)), layout: modelLayout)
            }
            return Array(model.prefix(modelLayout.model.count))
        case .pretrainMasked:
            let masked = try reconstructionSource()
            // Its own stream of images, from the same random initialisation as every other
            // candidate (as the superpixel pretext's).
            var config = settings.base
            config.seed = settings.base.seed &+ 0x5eed
            return try jointTraining(heads: .shared, rate: 1e-3, steps: phase.steps, source: masked,
                                     tasks: Array(masked.taskNames.indices), config: config,
                                     label: "masked reconstruction") { step, model in
                recorder.reached(step, of: phase, model.parameters, layout: modelLayout)
            }.parameters
        }
    }

    /// Joint training from the random initialisation on the meta-train tasks, or on `tasks` of
    /// `source` with `config` (a pretext's).
    func jointTraining(heads: JointTraining.Heads, rate: Float, steps: Int, source: TaskSource, tasks: [Int]? = nil,
                       config: TrainingConfig? = nil, label: String? = nil,
                       snapshot: (Int, JointTraining.Model) -> Void) throws -> JointTraining.Model {
        var s = JointTraining.Settings(heads: heads, learningRate: rate, steps: steps)
        s.cosine = true
        let joint = JointTraining(config: config ?? settings.base, source: source, trainTasks: tasks ?? partition.train, settings: s)
        let progress = Throttle(every: 10)
        return try joint.train(initial: randomInitial()) { step, model in
            snapshot(step, model)
            if progress.due() || step == steps {
                say("\(label ?? "joint training (\(heads.rawValue) heads)"): step \(step)/\(steps)  ETA \(ProgressLine.duration(progress.eta(done: step, total: steps)))")
            }
            return StopSignal.received == nil
        }
    }

    /// Meta-trains on the cluster settings; `snapshot(step, meta, layout)` after every step.
    /// An interrupted phase resumes from its newest checkpoint.
    func metaTrain(config: TrainingConfig, dataset: DatasetSpec, source: TaskSource, split: TaskSplit,
                   initial: [Float]?, folder: String,
                   snapshot: @escaping (Int, [Float], MetaLayout) -> Void) throws -> [Float] {
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: split, evaluation: EvaluationSpec())
        let dir = settings.out + "/checkpoints/" + folder
        let resume = try Checkpoint.resumable(in: dir, logger: logger)
        if let resume, resume.run.training != config {
            throw StudyError("\(dir) holds a checkpoint of other settings; remove it")
        }
        var outputs = TrainingLauncher.Outputs(checkpointFolder: dir, checkpointEvery: 25,
                                               metricsPath: settings.out + "/checkpoints/\(folder).jsonl")
        outputs.quiet = false
        let summary = try launcher.run(spec: resume?.run ?? spec, source: source, outputs: outputs, resume: resume, initial: initial,
                                       onStep: { _, run in snapshot(run.outer.step, run.outer.meta, run.outer.layout) })
        if let sig = summary.stoppedBySignal { throw StudyStopped(signal: sig) }
        return summary.finalParameters
    }
}

/// A training phase of a candidate: how many steps its share of the budget buys, which budget
/// fractions its steps reach, and what was spent before it.
public struct TrainingPhase: Sendable {
    /// Compute spent up to a point: core-seconds, task samples and steps (of every phase).
    public struct Spent: Codable, Sendable, Equatable {
        public var coreSeconds: Double
        public var samples: Int
        public var steps: Int
        public static let zero = Spent(coreSeconds: 0, samples: 0, steps: 0)

        public init(coreSeconds: Double, samples: Int, steps: Int) {
            self.coreSeconds = coreSeconds
            self.samples = samples
            self.steps = steps
        }
    }

    public let cost: Double
    public let steps: Int
    public let metaBatch: Int
    /// Budget fractions reached at each step.
    public let marks: [Int: [Double]]
    public let before: Spent

    /// A phase costing `cost` core-seconds per step within `seconds`, covering the budget
    /// fractions in `from...within` of `fractions`.
    public init(cost: Double, seconds: Double, metaBatch: Int, fractions: [Double], from: Double = 0, within: Double = 1,
                before: Spent = .zero) {
        self.cost = cost
        self.metaBatch = metaBatch
        self.before = before
        steps = max(Int((seconds / cost).rounded(.down)), 1)
        marks = Self.snapshotSteps(steps, fractions: fractions, from: from, within: within)
    }

    /// What the phase has spent, in total, after `step` of its steps.
    public func spent(at step: Int) -> Spent {
        Spent(coreSeconds: before.coreSeconds + Double(step) * cost, samples: before.samples + step * metaBatch,
              steps: before.steps + step)
    }

    /// The budget fractions reached at each step, for a phase of `total` steps that covers the
    /// fractions in `from...within` (`from` + (`within` - `from`) x step / total). A phase of
    /// fewer steps than fractions reaches several at one step: each is a snapshot of the same
    /// model, recorded with what that step really cost.
    public static func snapshotSteps(_ total: Int, fractions: [Double], from: Double = 0, within: Double = 1) -> [Int: [Double]] {
        var marks: [Int: [Double]] = [:]
        for f in fractions where f > from && f <= within + 1e-9 {
            let step = max(Int(((f - from) / (within - from) * Double(total)).rounded()), 1)
            marks[min(step, total), default: []].append(f)
        }
        return marks
    }
}

/// Writes a candidate's snapshots as its phases reach them and keeps them in the study's
/// state (as partial until the candidate is done), so an interrupted candidate keeps the
/// snapshots it took. Snapshots are recorded from training callbacks, so the first error is
/// kept for the caller to throw.
final class SnapshotRecorder {
    let runner: StudyRunner
    let candidate: String
    private(set) var trained: StudyState.Trained
    private(set) var error: Error?

    init(runner: StudyRunner, candidate: String) {
        self.runner = runner
        self.candidate = candidate
        // Snapshots already taken by an interrupted attempt are kept; the phases are
        // deterministic, so they are not taken again.
        trained = runner.stateLock.withLock { runner.state.partial[candidate] } ?? StudyState.Trained()
    }

    /// Records every fraction `phase` reaches at `step`.
    func reached(_ step: Int, of phase: TrainingPhase, _ values: [Float], layout: MetaLayout) {
        for f in phase.marks[step] ?? [] { record(f, values, layout: layout, spent: phase.spent(at: step)) }
    }

    func record(_ fraction: Double, _ values: [Float], layout: MetaLayout, spent: TrainingPhase.Spent) {
        guard !trained.fractions.contains(fraction) else { return }
        let file = "models/\(candidate)-\(Int((fraction * 100).rounded())).safetensors"
        do {
            try ParameterFile.write(values, layout: layout, metadata: ["candidate": candidate], to: runner.settings.out + "/" + file)
            trained.append(fraction: fraction, file: file, coreSeconds: spent.coreSeconds, taskSamples: spent.samples, steps: spent.steps)
            try runner.stateLock.withLock {
                runner.state.partial[candidate] = trained
                try runner.state.save(runner.statePath)
            }
        } catch {
            if self.error == nil { self.error = error }
        }
    }
}
