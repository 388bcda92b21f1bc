import Core
import Datasets
import Engine
import Evaluation
import Foundation
import Logging
import MetaLearning
import Pretraining
import Training

/// Runs a study (`medmaml-coordinator study`): the protocol of `StudyPlan` on one dataset.
///
/// 1. Calibration: the core-seconds one training step of each kind costs on this machine
///    (one thread, after a warm-up step). The budget in core-seconds becomes a step count per
///    candidate, so every candidate spends the same compute.
/// 2. Training: every candidate, with snapshots at a quarter, half, three quarters and all of
///    the budget. Meta-training runs on the cluster options (local workers by default); joint
///    training is sequential and runs here.
/// 3. Tuning, on meta-validation only: every (snapshot, adaptation setting) pair of every
///    candidate; the best pair of each candidate, then the best candidate of each family.
/// 4. Meta-test, once: the chosen candidate of each family on the same instances, paired
///    differences, Dice against budget and against shots (settings re-chosen on
///    meta-validation at each snapshot and each K).
///
/// Every stage's result is saved in `state.json` before the next starts; a study started again
/// with the same folder continues where it stopped.
final class StudyRunner: @unchecked Sendable {
    struct Settings {
        var out: String
        var base: TrainingConfig
        var dataset: DatasetSpec
        var split: TaskSplit
        /// Core-seconds of training per candidate.
        var budget: Double
        var fractions: [Double] = [0.25, 0.5, 0.75, 1]
        var shots: [Int] = [1, 5, 10, 20]
        var mainShots = 5
        var query = 5
        var validationPerTask = 6
        var testPerTask = 10
        /// Compute threads for tuning and testing.
        var threads = 1
        var costs: [String: Double]?
    }

    let settings: Settings
    let source: TaskSource
    let cluster: ClusterOptions
    let logger: Logger
    let partition: TaskSplit.Partition
    var state: StudyState
    /// The study folder, held while this runner exists.
    private let lock: FolderLock
    /// The study's tasks with superpixel pseudo-tasks or union tasks beside them, when a
    /// candidate asks for them: built (and the split checked) once, before anything starts.
    private let pseudoAugmented: (spec: DatasetSpec, source: TaskSource)?
    private let unionAugmented: (spec: DatasetSpec, source: TaskSource)?
    private let say: @Sendable (String) -> Void

    var statePath: String { settings.out + "/state.json" }

    init(settings: Settings, plan: StudyPlan, source: TaskSource, cluster: ClusterOptions, logger: Logger,
         say: @escaping @Sendable (String) -> Void) throws {
        self.settings = settings
        self.source = source
        self.cluster = cluster
        self.logger = logger
        self.say = say
        partition = settings.split.partition(source.taskNames)
        guard !partition.train.isEmpty else { throw StudyError("the split leaves no meta-train tasks") }
        guard !partition.validation.isEmpty else {
            throw StudyError("a study needs meta-validation tasks to choose settings on: pass --validate GLOB (every choice is made there, never on the meta-test tasks)")
        }
        guard !partition.test.isEmpty else { throw StudyError("the split has no meta-test tasks: pass --hold-out GLOB") }
        let recipes = plan.candidates.compactMap { if case .meta(let recipe) = $0.training { recipe } else { nil } }
        pseudoAugmented = recipes.contains(where: \.pseudoTasks)
            ? try settings.dataset.addingPseudoTasks(PseudoTaskOptions(), to: source, split: settings.split) : nil
        unionAugmented = recipes.contains(where: \.unionTasks) ? try settings.dataset.addingUnionTasks(to: source, split: settings.split) : nil
        lock = try FolderLock(folder: settings.out, purpose: "a study")
        try FileManager.default.createDirectory(atPath: settings.out + "/models", withIntermediateDirectories: true)
        let fingerprint = StudyState.Fingerprint(plan: plan, config: settings.base, dataset: settings.dataset.identity.fingerprint,
                                                 split: settings.split, budget: settings.budget, fractions: settings.fractions,
                                                 shots: settings.shots, validationPerTask: settings.validationPerTask,
                                                 testPerTask: settings.testPerTask)
        if FileManager.default.fileExists(atPath: settings.out + "/state.json") {
            let saved = try StudyState.load(settings.out + "/state.json")
            guard saved.fingerprint == fingerprint else {
                throw StudyError("\(settings.out) holds a study with other settings; use another --out or the same options")
            }
            state = saved
            say("continuing the study in \(settings.out)")
        } else {
            state = StudyState(fingerprint: fingerprint)
        }
    }

    var plan: StudyPlan { state.fingerprint.plan }

    func run() throws {
        try stage("calibration") { try calibrate() }
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
        for candidate in plan.candidates where state.tuned[candidate.name] == nil {
            try stage("tuning \(candidate.name)") { state.tuned[candidate.name] = try tune(candidate, shots: settings.mainShots) }
        }
        choose()
        if state.test.isEmpty { try stage("meta-test") { try test() } }
        if state.budgetCurve.isEmpty { try stage("budget curve") { try budgetCurve() } }
        try stage("shots curve") { try shotsCurve() }
        try StudyReport(state: state, settings: settings, source: source, partition: partition).write(runner: self)
    }

    /// Runs a stage, timing it and saving the state after it.
    private func stage(_ name: String, _ body: () throws -> Void) throws {
        if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
        say("study: \(name)")
        let clock = MonotonicClock()
        try body()
        state.stageSeconds[name] = clock.now
        try state.save(statePath)
    }

    // MARK: 1. Calibration

    /// The cost key of a training phase: what one step computes.
    static func costKey(meta recipe: StudyPlan.MetaRecipe) -> String {
        "meta-\(recipe.order.rawValue)\(recipe.learnedInnerRates ? "+lslr" : "")\(recipe.multiStepLoss ? "+msl" : "")"
            + (recipe.headOnlyInnerLoop ? "+head" : "") + (recipe.pseudoTasks ? "+pseudo" : "") + (recipe.prototypeHead ? "+proto" : "")
            + (recipe.unionTasks ? "+union" : "") + (recipe.innerSteps.map { "+steps\($0)" } ?? "")
    }
    static func costKey(joint heads: JointTraining.Heads) -> String { "joint-\(heads.rawValue)" }
    static let pretrainKey = "pretrain"
    static let maskedPretrainKey = "pretrain-masked"

    private func calibrate() throws {
        if let given = settings.costs {
            state.stepCost = given
        }
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
                if recipe.warmStart == "transfer-heads" { keys[Self.costKey(joint: .perTask)] = { try self.measureJoint(.perTask) } }
                if recipe.warmStart == "pretrain" { keys[Self.pretrainKey] = { try self.measurePretrain() } }
                if recipe.warmStart == "pretrain-masked" {
                    keys[Self.maskedPretrainKey] = {
                        let masked = try self.reconstructionSource()
                        return try self.measureJoint(.shared, source: masked, tasks: Array(masked.taskNames.indices))
                    }
                }
            }
        }
        for key in keys.keys.sorted() where state.stepCost[key] == nil {
            let cost = try keys[key]!()
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

    private func measureJoint(_ heads: JointTraining.Heads, source: TaskSource? = nil, tasks: [Int]? = nil) throws -> Double {
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
    private func metaTrainingData(_ recipe: StudyPlan.MetaRecipe) throws -> (DatasetSpec, TaskSource) {
        if recipe.pseudoTasks, let pseudoAugmented { return pseudoAugmented }
        if recipe.unionTasks, let unionAugmented { return unionAugmented }
        return (settings.dataset, source)
    }

    private func pretrainingSource() throws -> (DatasetSpec, TaskSource) {
        let path = settings.dataset.kind == .synthetic ? settings.dataset.name : settings.dataset.path
        return try DatasetSpec.openPseudo(path, options: settings.dataset.options, pseudo: PseudoTaskOptions(),
                                          includeTraining: true, logger: logger)
    }

    /// The masked-reconstruction pretext on the same unlabelled images as the pseudo-tasks.
    private func reconstructionSource() throws -> MaskedReconstructionSource {
        guard let pseudo = try pretrainingSource().1 as? PseudoTaskSource else { throw StudyError("no unlabelled images to pretrain on") }
        return try MaskedReconstructionSource(images: pseudo.images)
    }

    // MARK: 2. Training

    private func randomInitial() -> [Float] {
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

    /// Steps of a phase that costs `cost` core-seconds per step within `seconds`.
    private func steps(_ cost: Double, seconds: Double) -> Int {
        max(Int((seconds / cost).rounded(.down)), 1)
    }

    /// Trains a candidate; joint training reads its samples from `source` (the study's by
    /// default; a shared cache when candidates train side by side).
    private func train(_ candidate: StudyPlan.Candidate, source jointSource: TaskSource? = nil) throws -> StudyState.Trained {
        let budget = settings.budget
        // Snapshots already taken by an interrupted attempt are kept; the phases are
        // deterministic, so they are not taken again.
        var trained = stateLock.withLock { state.partial[candidate.name] } ?? StudyState.Trained()
        let out = settings.out, name = candidate.name
        let costs = stateLock.withLock { state.stepCost }
        // The first error writing a snapshot (snapshots are written from training callbacks).
        var snapshotError: Error?
        func record(_ fraction: Double, _ values: [Float], layout: MetaLayout, spent: Double, samples: Int, steps: Int) {
            guard !trained.fractions.contains(fraction) else { return }
            let file = "models/\(name)-\(Int((fraction * 100).rounded())).safetensors"
            do {
                try Safetensors.write(Safetensors.File(tensors: ParameterFile.tensors(values, layout: layout),
                                                       metadata: ["format": "medmaml-parameters-1", "candidate": name]),
                                      to: out + "/" + file)
                trained.append(fraction: fraction, file: file, coreSeconds: spent, taskSamples: samples, steps: steps)
                try stateLock.withLock {
                    state.partial[name] = trained
                    try state.save(statePath)
                }
            } catch {
                if snapshotError == nil { snapshotError = error }
            }
        }
        let metaBatch = settings.base.metaBatch
        let modelLayout = try MetaLayout(config: settings.base.meta)
        switch candidate.training {
        case .none:
            record(0, randomInitial(), layout: modelLayout, spent: 0, samples: 0, steps: 0)

        case .joint(let heads, let rate):
            let cost = costs[Self.costKey(joint: heads)]!
            let total = steps(cost, seconds: budget)
            let marks = snapshotSteps(total)
            _ = try jointTraining(heads: heads, rate: rate, steps: total, source: jointSource ?? source) { step, model in
                for f in marks[step] ?? [] {
                    record(f, model.parameters, layout: modelLayout, spent: Double(step) * cost, samples: step * metaBatch, steps: step)
                }
            }

        case .meta(let recipe):
            var initial = randomInitial()
            var spentBefore = 0.0, samplesBefore = 0, stepsBefore = 0
            var metaBudget = budget
            if let warm = recipe.warmStart {
                // Half the budget on the warm start, half on meta-training from its result.
                let half = budget / 2
                metaBudget = budget - half
                let total: Int, cost: Double
                switch warm {
                case "transfer-heads":
                    cost = costs[Self.costKey(joint: .perTask)]!
                    total = steps(cost, seconds: half)
                    let marks = snapshotSteps(total, within: 0.5)
                    initial = try jointTraining(heads: .perTask, rate: 1e-3, steps: total, source: source) { step, model in
                        for f in marks[step] ?? [] {
                            record(f, model.parameters, layout: modelLayout, spent: Double(step) * cost, samples: step * metaBatch, steps: step)
                        }
                    }.parameters
                case "pretrain":
                    cost = costs[Self.pretrainKey]!
                    total = steps(cost, seconds: half)
                    let marks = snapshotSteps(total, within: 0.5)
                    let (spec, pseudo) = try pretrainingSource()
                    var config = metaConfig(.init(order: settings.base.meta.order), steps: total)
                    // Its own stream of pseudo-tasks, from the same random initialisation as
                    // every other candidate, so "pretrained or not" is the only difference.
                    config.seed = settings.base.seed &+ 0x5eed
                    config.initSeed = settings.base.initSeed ?? settings.base.seed
                    let model = try metaTrain(config: config, dataset: spec, source: pseudo, split: pseudo.defaultSplit,
                                              initial: nil, folder: "pretrain-\(name)") { step, meta, metaLayout in
                        for f in marks[step] ?? [] {
                            record(f, Array(meta.prefix(metaLayout.model.count)), layout: modelLayout,
                                   spent: Double(step) * cost, samples: step * metaBatch, steps: step)
                        }
                    }
                    initial = Array(model.prefix(modelLayout.model.count))
                case "pretrain-masked":
                    cost = costs[Self.maskedPretrainKey]!
                    total = steps(cost, seconds: half)
                    let marks = snapshotSteps(total, within: 0.5)
                    let masked = try reconstructionSource()
                    // Its own stream of images, from the same random initialisation as every
                    // other candidate (as the superpixel pretext's).
                    var config = settings.base
                    config.seed = settings.base.seed &+ 0x5eed
                    initial = try jointTraining(heads: .shared, rate: 1e-3, steps: total, source: masked,
                                                tasks: Array(masked.taskNames.indices), config: config,
                                                label: "masked reconstruction") { step, model in
                        for f in marks[step] ?? [] {
                            record(f, model.parameters, layout: modelLayout, spent: Double(step) * cost, samples: step * metaBatch, steps: step)
                        }
                    }.parameters
                default:
                    throw StudyError("unknown warm start \(warm)")
                }
                spentBefore = Double(total) * cost
                samplesBefore = total * metaBatch
                stepsBefore = total
            }
            let cost = costs[Self.costKey(meta: recipe)]!
            let total = steps(cost, seconds: metaBudget)
            let config = metaConfig(recipe, steps: total)
            let layout = try MetaLayout(config: config.meta)
            var start = layout.initialValues(seed: settings.base.seed, innerLearningRate: config.meta.innerLearningRate)
            start.replaceSubrange(0..<layout.model.count, with: initial)
            let marks = recipe.warmStart == nil ? snapshotSteps(total) : snapshotSteps(total, from: 0.5)
            let (dataset, metaSource) = try metaTrainingData(recipe)
            _ = try metaTrain(config: config, dataset: dataset, source: metaSource, split: settings.split,
                              initial: start, folder: "train-\(name)") { step, meta, _ in
                for f in marks[step] ?? [] {
                    record(f, meta, layout: layout, spent: spentBefore + Double(step) * cost,
                           samples: samplesBefore + step * metaBatch, steps: stepsBefore + step)
                }
            }
        }
        if let snapshotError { throw snapshotError }
        if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
        guard trained.fractions.count == (candidate.training == StudyPlan.Training.none ? 1 : settings.fractions.count) else {
            throw StudyError("\(name): a snapshot is missing (\(trained.fractions) of \(settings.fractions))")
        }
        stateLock.withLock { state.partial[name] = nil }
        return trained
    }

    /// Guards `state` while candidates train side by side.
    private let stateLock = NSLock()

    /// The budget fractions reached at each step, for a phase of `total` steps that covers the
    /// fractions in `from...within` (`from` + (`within` - `from`) x step / total). A phase of
    /// fewer steps than fractions reaches several at one step: each is a snapshot of the same
    /// model, recorded with what that step really cost.
    private func snapshotSteps(_ total: Int, from: Double = 0, within: Double = 1) -> [Int: [Double]] {
        var marks: [Int: [Double]] = [:]
        for f in settings.fractions where f > from && f <= within + 1e-9 {
            let step = max(Int(((f - from) / (within - from) * Double(total)).rounded()), 1)
            marks[min(step, total), default: []].append(f)
        }
        return marks
    }

    /// Joint training from the random initialisation on the meta-train tasks, or on `tasks` of
    /// `source` with `config` (a pretext's).
    private func jointTraining(heads: JointTraining.Heads, rate: Float, steps: Int, source: TaskSource, tasks: [Int]? = nil,
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

    /// Meta-trains on the cluster options; `snapshot(step, meta, layout)` after every step.
    /// An interrupted phase resumes from its newest checkpoint.
    private func metaTrain(config: TrainingConfig, dataset: DatasetSpec, source: TaskSource, split: TaskSplit,
                           initial: [Float]?, folder: String,
                           snapshot: @escaping (Int, [Float], MetaLayout) -> Void) throws -> [Float] {
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: split, evaluation: EvaluationSpec())
        let dir = settings.out + "/checkpoints/" + folder
        let resume = try resumeCheckpoint(in: dir, logger: logger)
        if let resume, resume.run.training != config {
            throw StudyError("\(dir) holds a checkpoint of other settings; remove it")
        }
        let summary = try runTraining(spec: resume?.run ?? spec, source: source, cluster: cluster, checkpointDir: dir,
                                      checkpointEvery: 25, metrics: settings.out + "/checkpoints/\(folder).jsonl", resume: resume,
                                      initial: initial, logger: logger, quiet: false,
                                      onStep: { _, run in snapshot(run.outer.step, run.outer.meta, run.outer.layout) })
        if let sig = summary.stoppedBySignal { throw StudyStopped(signal: sig) }
        return summary.finalParameters
    }

    // MARK: 3. Tuning on meta-validation

    /// A candidate's snapshot, read once: its parameters and the configuration they adapt with.
    struct Snapshot {
        var values: [Float]
        var config: MetaConfig
        var modelCount: Int

        /// The adaptation of this snapshot with one setting of a grid.
        func adaptation(_ setting: StudyPlan.Adaptation) -> MetaTest.Adaptation {
            setting.adaptation(meta: values, config: config, modelCount: modelCount)
        }
    }

    func snapshot(_ candidate: StudyPlan.Candidate, _ index: Int) throws -> Snapshot {
        let trained = state.trained[candidate.name]!
        let config: MetaConfig
        if case .meta(let recipe) = candidate.training, trained.fractions[index] > (recipe.warmStart == nil ? 0 : 0.5) {
            config = metaConfig(recipe, steps: 1).meta
        } else {
            config = settings.base.meta
        }
        let layout = try MetaLayout(config: config)
        let file = try Safetensors.read(path: settings.out + "/" + trained.files[index])
        return Snapshot(values: try ParameterFile.load(file, layout: layout, path: trained.files[index]), config: config,
                        modelCount: layout.model.count)
    }

    /// The adaptation of a candidate's snapshot with one setting of its grid.
    func adaptation(_ candidate: StudyPlan.Candidate, snapshot index: Int, setting: StudyPlan.Adaptation) throws -> MetaTest.Adaptation {
        try snapshot(candidate, index).adaptation(setting)
    }

    /// The index of the first largest value: ties go to the earlier snapshot and setting.
    static func firstBest(_ values: [Double]) -> Int {
        values.indices.reduce(0) { values[$1] > values[$0] ? $1 : $0 }
    }

    private func tune(_ candidate: StudyPlan.Candidate, shots: Int) throws -> StudyState.Tuned {
        let trained = state.trained[candidate.name]!
        var methods: [MetaTest.Method] = []
        for s in trained.fractions.indices {
            let snap = try snapshot(candidate, s)
            for (g, setting) in candidate.grid.enumerated() {
                methods.append(.init(name: "\(s)/\(g)", adaptation: snap.adaptation(setting)))
            }
        }
        let results = try evaluate(methods, on: partition.validation, perTask: settings.validationPerTask, shots: shots, seedOffset: 1)
        let grid = candidate.grid.count
        let dice = trained.fractions.indices.map { s in (0..<grid).map { results[s * grid + $0].dice.mean } }
        let first = Self.firstBest(dice.flatMap { $0 })
        let best = (first / grid, first % grid)
        say("\(candidate.name): best on meta-validation \(String(format: "%.3f", dice[best.0][best.1])) with \(candidate.grid[best.1]) after \(Int(trained.fractions[best.0] * 100))% of the budget")
        return StudyState.Tuned(dice: dice, bestSnapshot: best.0, bestSetting: best.1)
    }

    /// Scores methods on sampled instances of `tasks` (validation or test) with `shots` shots.
    func evaluate(_ methods: [MetaTest.Method], on tasks: [Int], perTask: Int, shots: Int, seedOffset: UInt64) throws -> [MetaTest.MethodResult] {
        let seed = settings.base.seed &+ seedOffset &* 7919
        let instances = TaskSampler.evaluation(seed: seed, pool: tasks, perTask: perTask)
        let test = MetaTest(source: source, model: settings.base.meta.model, instances: instances, seed: seed, support: shots, query: settings.query)
        let progress = Throttle(every: 15), say = self.say
        do {
            // SIGINT or SIGTERM ends the stage at the next adaptation; it is not recorded, so
            // running the same command again does it whole.
            return try test.run(methods, threads: settings.threads) { done, total in
                if progress.due() && done > 1 { say("  \(done)/\(total) adaptations  ETA \(ProgressLine.duration(progress.eta(done: done, total: total)))") }
            } stop: {
                StopSignal.received != nil
            }
        } catch is MetaTest.Stopped {
            throw StudyStopped(signal: StopSignal.received ?? SIGINT)
        }
    }

    /// The best candidate of each family on meta-validation.
    private func choose() {
        state.chosen = [:]
        for c in plan.candidates {
            let t = state.tuned[c.name]!
            let score = t.dice[t.bestSnapshot][t.bestSetting]
            if let current = state.chosen[c.family], current.validationDice >= score { continue }
            state.chosen[c.family] = .init(candidate: c.name, snapshot: t.bestSnapshot, setting: t.bestSetting, validationDice: score)
        }
    }

    func candidate(_ name: String) -> StudyPlan.Candidate { plan.candidates.first { $0.name == name }! }

    /// Families in report order, those the plan has.
    var families: [String] {
        let present = Set(plan.candidates.map(\.family))
        return (StudyPlan.families + ["pretrained-maml"]).filter(present.contains)
    }

    // MARK: 4. Meta-test, once

    private func test() throws {
        var methods: [MetaTest.Method] = []
        for family in families {
            let choice = state.chosen[family]!
            let c = candidate(choice.candidate)
            methods.append(.init(name: family, adaptation: try adaptation(c, snapshot: choice.snapshot, setting: c.grid[choice.setting])))
        }
        // The pretraining comparison is recipe against the same recipe: pretrained MAML
        // against MAML from the random initialisation with the same order and settings.
        if let chosen = state.chosen["pretrained-maml"], case .meta(let recipe) = candidate(chosen.candidate).training,
           let plain = plan.candidates.first(where: {
               if case .meta(let r) = $0.training { return r.warmStart == nil && r.order == recipe.order && !r.learnedInnerRates && !r.multiStepLoss
                   && !r.headOnlyInnerLoop && !r.pseudoTasks && !r.prototypeHead && !r.unionTasks && r.innerSteps == nil }
               return false
           }), state.chosen["maml"]?.candidate != plain.name {
            let t = state.tuned[plain.name]!
            methods.append(.init(name: plain.name, adaptation: try adaptation(plain, snapshot: t.bestSnapshot, setting: plain.grid[t.bestSetting])))
        }
        let results = try evaluate(methods, on: partition.test, perTask: settings.testPerTask, shots: settings.mainShots, seedOffset: 2)
        for r in results { state.test[r.name] = r }
        let byName = Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.instanceDice) })
        for other in families where other != "maml" {
            state.differences["maml - \(other)"] = MeanCI.pairedDifference(byName["maml"]!, byName[other]!)
        }
        if let pretrained = byName["pretrained-maml"] {
            let plainName = methods.count > families.count ? methods.last!.name : "maml"
            state.differences["pretrained-maml - \(plainName)"] = MeanCI.pairedDifference(pretrained, byName[plainName]!)
        }
    }

    /// Meta-test Dice of each family's chosen candidate at every snapshot, with the setting
    /// chosen on meta-validation for that snapshot.
    private func budgetCurve() throws {
        var methods: [MetaTest.Method] = [], owners: [(String, Double)] = []
        for family in families {
            let choice = state.chosen[family]!
            let c = candidate(choice.candidate)
            let t = state.tuned[c.name]!, trained = state.trained[c.name]!
            for s in trained.fractions.indices where s != choice.snapshot {
                methods.append(.init(name: "\(family)@\(s)", adaptation: try adaptation(c, snapshot: s, setting: c.grid[Self.firstBest(t.dice[s])])))
                owners.append((family, trained.coreSeconds[s]))
            }
        }
        let results = try evaluate(methods, on: partition.test, perTask: settings.testPerTask, shots: settings.mainShots, seedOffset: 2)
        var points: [String: [StudyState.Point]] = [:]
        for (r, (family, x)) in zip(results, owners) { points[family, default: []].append(.init(x: x, dice: r.dice)) }
        // At the chosen snapshot the best setting is the chosen one: the meta-test scored it.
        for family in families {
            let choice = state.chosen[family]!
            points[family, default: []].append(.init(x: state.trained[choice.candidate]!.coreSeconds[choice.snapshot], dice: state.test[family]!.dice))
            state.budgetCurve[family] = points[family]!.sorted { $0.x < $1.x }
        }
    }

    /// Meta-test Dice of each family's chosen model against shots, the adaptation setting
    /// chosen on meta-validation at each K.
    private func shotsCurve() throws {
        for k in settings.shots where !(state.shotsCurve[families[0]] ?? []).contains(where: { $0.x == Double(k) }) {
            if k == settings.mainShots && families.allSatisfy({ state.test[$0] != nil }) {
                // The meta-test already scored each family's choice at this K, with the
                // setting this loop would choose (the best on meta-validation at that snapshot).
                for family in families { state.shotsCurve[family, default: []].append(.init(x: Double(k), dice: state.test[family]!.dice)) }
                try state.save(statePath)
                continue
            }
            var methods: [MetaTest.Method] = []
            for family in families {
                let choice = state.chosen[family]!
                let c = candidate(choice.candidate)
                let snap = try snapshot(c, choice.snapshot)
                let candidates = c.grid.map(snap.adaptation)
                let validation = try evaluate(candidates.enumerated().map { .init(name: "\($0.offset)", adaptation: $0.element) },
                                              on: partition.validation, perTask: settings.validationPerTask, shots: k, seedOffset: 1)
                methods.append(.init(name: family, adaptation: candidates[Self.firstBest(validation.map(\.dice.mean))]))
            }
            let results = try evaluate(methods, on: partition.test, perTask: settings.testPerTask, shots: k, seedOffset: 2)
            for r in results { state.shotsCurve[r.name, default: []].append(.init(x: Double(k), dice: r.dice)) }
            try state.save(statePath)
        }
    }
}

struct StudyError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct StudyStopped: Error {
    var signal: Int32
}
