import Cluster
import Core
import Datasets
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
/// 2. Training: every candidate, with snapshots at fractions of the budget. Meta-training
///    runs on the cluster settings (local workers by default); joint training runs here.
/// 3. Tuning, on meta-validation only: every (snapshot, adaptation setting) pair of every
///    candidate; the best pair of each candidate, then the best candidate of each family.
/// 4. Meta-test, once: the chosen candidate of each family on the same instances, paired
///    differences, Dice against budget and against shots (settings re-chosen on
///    meta-validation at each snapshot and each K).
///
/// Every stage's result is saved in `state.json` before the next starts; a study started again
/// with the same folder continues where it stopped. SIGINT or SIGTERM ends the current stage
/// at its next step or adaptation (`StudyStopped`); that stage is done again whole.
public final class StudyRunner: @unchecked Sendable {
    public struct Settings: Sendable {
        public var out: String
        public var base: TrainingConfig
        public var dataset: DatasetSpec
        public var split: TaskSplit
        /// Core-seconds of training per candidate.
        public var budget: Double
        public var fractions: [Double] = [0.25, 0.5, 0.75, 1]
        public var shots: [Int] = [1, 5, 10, 20]
        public var mainShots = 5
        public var query = 5
        public var validationPerTask = 6
        public var testPerTask = 10
        /// Compute threads for tuning and testing.
        public var threads = 1
        /// Per-step costs to use instead of measuring them.
        public var costs: [String: Double]?

        public init(out: String, base: TrainingConfig, dataset: DatasetSpec, split: TaskSplit, protocol p: StudyProtocol) {
            self.out = out
            self.base = base
            self.dataset = dataset
            self.split = split
            budget = p.budget
            fractions = p.fractions
            shots = p.shots
            mainShots = p.mainShots
            validationPerTask = p.validationPerTask
            testPerTask = p.testPerTask
            costs = p.costs
        }
    }

    /// The tasks the meta-test meets: the dataset's own held-out tasks, or those of another
    /// dataset (cross-domain: trained and chosen on one, tested on the other).
    public struct TestSet: Sendable {
        public var dataset: DatasetSpec
        public var source: TaskSource
        public var tasks: [Int]
        public init(dataset: DatasetSpec, source: TaskSource, tasks: [Int]) {
            self.dataset = dataset
            self.source = source
            self.tasks = tasks
        }
    }

    public let settings: Settings
    let source: TaskSource
    /// Where the meta-test is: another dataset's tasks, or nil for the split's meta-test tasks.
    let crossDomain: TestSet?
    let launcher: TrainingLauncher
    let logger: Logger
    let partition: TaskSplit.Partition
    public internal(set) var state: StudyState
    /// The study folder, held while this runner exists.
    private let lock: FolderLock
    /// The study's tasks with superpixel pseudo-tasks or union tasks beside them, when a
    /// candidate asks for them: built (and the split checked) once, before anything starts.
    let pseudoAugmented: (spec: DatasetSpec, source: TaskSource)?
    let unionAugmented: (spec: DatasetSpec, source: TaskSource)?
    /// The task universe with meta-augmentation, when a candidate asks for it.
    let augmentedUniverse: (spec: DatasetSpec, source: TaskSource)?
    let say: @Sendable (String) -> Void
    /// Guards `state` while candidates train side by side.
    let stateLock = NSLock()

    var statePath: String { settings.out + "/state.json" }

    public init(settings: Settings, plan: StudyPlan, source: TaskSource, launcher: TrainingLauncher, logger: Logger,
                test crossDomain: TestSet? = nil, say: @escaping @Sendable (String) -> Void) throws {
        self.settings = settings
        self.source = source
        self.crossDomain = crossDomain
        self.launcher = launcher
        self.logger = logger
        self.say = say
        partition = settings.split.partition(source.taskNames)
        guard !partition.train.isEmpty else { throw StudyError("the split leaves no meta-train tasks") }
        guard !partition.validation.isEmpty else {
            throw StudyError("a study needs meta-validation tasks to choose settings on: pass --validate GLOB (every choice is made there, never on the meta-test tasks)")
        }
        guard !partition.test.isEmpty || crossDomain != nil else { throw StudyError("the split has no meta-test tasks: pass --hold-out GLOB") }
        if let crossDomain {
            guard !crossDomain.tasks.isEmpty else { throw StudyError("the test dataset has no task to meet") }
            guard crossDomain.source.imageShape == source.imageShape else {
                throw StudyError("the test dataset's images (\(crossDomain.source.imageShape)) are not the model's (\(source.imageShape))")
            }
        }
        let recipes = plan.candidates.compactMap { if case .meta(let recipe) = $0.training { recipe } else { nil } }
        pseudoAugmented = recipes.contains(where: \.pseudoTasks)
            ? try settings.dataset.addingPseudoTasks(PseudoTaskOptions(), to: source, split: settings.split) : nil
        unionAugmented = recipes.contains(where: \.unionTasks) ? try settings.dataset.addingUnionTasks(to: source, split: settings.split) : nil
        augmentedUniverse = recipes.contains(where: \.metaAugmentation) ? try settings.dataset.withMetaAugmentation() : nil
        lock = try FolderLock(folder: settings.out, purpose: "a study")
        try FileManager.default.createDirectory(atPath: settings.out + "/models", withIntermediateDirectories: true)
        let datasets = settings.dataset.identity.fingerprint
            + (crossDomain.map { " test \($0.dataset.identity.fingerprint) \($0.tasks.map { $0.description }.joined(separator: ","))" } ?? "")
        let fingerprint = StudyState.Fingerprint(plan: plan, config: settings.base, dataset: datasets,
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

    public var plan: StudyPlan { state.fingerprint.plan }

    /// The meta-test's source and tasks.
    var testSet: (source: TaskSource, tasks: [Int]) { crossDomain.map { ($0.source, $0.tasks) } ?? (source, partition.test) }

    /// Runs every stage not yet done, then writes the report.
    public func run() throws {
        try prepare()
        for candidate in plan.candidates where state.tuned[candidate.name] == nil {
            try stage("tuning \(candidate.name)") { state.tuned[candidate.name] = try tune(candidate, shots: settings.mainShots) }
        }
        state.chosen = StudyChoice.bestPerFamily(plan: plan, tuned: state.tuned)
        if state.test.isEmpty { try stage("meta-test") { try test() } }
        if state.budgetCurve.isEmpty { try stage("budget curve") { try budgetCurve() } }
        try stage("shots curve") { try shotsCurve() }
        try StudyReport(state: state, settings: settings, source: source, partition: partition, test: testSet).write(runner: self)
    }

    /// Calibration and training: every candidate's snapshots, for a protocol that evaluates
    /// them its own way (the regime map).
    public func prepare() throws {
        try stage("calibration") { try calibrate() }
        try trainAll()
    }

    /// Runs a stage, timing it and saving the state after it.
    func stage(_ name: String, _ body: () throws -> Void) throws {
        if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
        say("study: \(name)")
        let clock = MonotonicClock()
        try body()
        state.stageSeconds[name] = clock.now
        try state.save(statePath)
    }

    func candidate(_ name: String) -> StudyPlan.Candidate? { plan.candidates.first { $0.name == name } }

    /// The families the plan has, in report order.
    var families: [Family] { Set(plan.candidates.map(\.family)).sorted() }
}

/// A study cannot go on: a sentence saying what to change.
public struct StudyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// SIGINT or SIGTERM stopped the study; running the same command continues it.
public struct StudyStopped: Error {
    public var signal: Int32
}
