import Cluster
import Core
import Datasets
import Evaluation
import Foundation
import Logging
import MetaLearning
import Training

/// The regime map (`medmaml-coordinator map`): on the task universe, held-out Dice of every
/// family against the number of meta-training task types N, the shots K, the adaptation steps
/// s and the training budget, all at equal training compute, over several training seeds.
///
/// Each cell (N, seed) is a small study (`StudyRunner`): every candidate of the plan trained
/// for the same core-seconds on a universe of N types. Then, for each family and each s, the
/// setting (and candidate) with the best meta-validation Dice at the main K is chosen, every
/// family held to exactly s steps; the meta-test tasks meet those choices at every K, once.
/// Across cells nothing is tuned on test tasks. Differences between families are paired on
/// the same test instances and summarised over seeds, task types and instances by the
/// hierarchical bootstrap. Every cell's results are saved as they are done (`map.json`), so
/// the map continues where it stopped, across sessions.
public final class RegimeMap: @unchecked Sendable {
    public struct Settings: Sendable {
        public var out: String
        /// Model, task shape and inner loop; the seed is each cell's.
        public var base: TrainingConfig
        /// The universe's settings but its number of types.
        public var universe: TaskUniverse.Options
        /// Meta-training task types per column of the map; nil: unbounded.
        public var typeCounts: [Int?] = [3, 10, 30, 100, 1000, nil]
        public var seeds: [UInt64] = [0, 1, 2]
        public var shots: [Int] = [1, 3, 5, 10]
        /// The K at which settings are chosen.
        public var mainShots = 5
        public var steps: [Int] = [0, 1, 2, 5, 10, 20, 50, 100]
        /// Fast adaptation: at most this many steps.
        public var fastSteps = 5
        /// Core-seconds of training per candidate.
        public var budget: Double = 150
        public var fractions: [Double] = [0.25, 0.5, 0.75, 1]
        public var validationPerTask = 2
        public var testPerTask = 3
        public var threads = 1
        public var costs: [String: Double]?
        /// The cells whose snapshots give the Dice-against-budget curves, when they run (a
        /// curve adds a measurement to its cell and changes none, so it is not part of the
        /// fingerprint; a cell measured before keeps what it has).
        public var budgetCurveCells: [Cell] = []
        /// The cells asked for, in the order they run: every N for the first seed, then the next seed.
        public var cells: [Cell] { seeds.flatMap { seed in typeCounts.map { Cell(types: $0, seed: seed) } } }
        /// The candidates (at most a few per family): each family's choice at each s is made
        /// among all of its candidates.
        public var plan: StudyPlan
        /// A dataset from outside the universe that every finished cell's models meet once,
        /// with the settings chosen on the universe's meta-validation (not part of what the
        /// map's cells compute, so a finished map can be shown another dataset).
        public var crossDomain: CrossDomain?

        public init(out: String, base: TrainingConfig, universe: TaskUniverse.Options, plan: StudyPlan) {
            self.out = out
            self.base = base
            self.universe = universe
            self.plan = plan
        }
    }

    /// A dataset the map's models meet after training (`map --test-dataset`).
    public struct CrossDomain: Sendable {
        public var name: String
        public var source: TaskSource
        public var tasks: [Int]
        /// Shots of the cross-domain meta-test.
        public var shots: [Int]
        public var perTask: Int
        public init(name: String, source: TaskSource, tasks: [Int], shots: [Int], perTask: Int) {
            self.name = name
            self.source = source
            self.tasks = tasks
            self.shots = shots
            self.perTask = perTask
        }

        /// What decides its results: the dataset's fingerprint, its tasks, the shots and instances.
        var fingerprint: String {
            "\(source.identity.fingerprint) \(tasks.map { source.taskNames[$0] }) \(shots) \(perTask)"
        }
    }

    /// A cell of the map: N task types (nil: unbounded) and a training seed.
    public struct Cell: Codable, Hashable, Sendable {
        public var types: Int?
        public var seed: UInt64
        public init(types: Int?, seed: UInt64) {
            self.types = types
            self.seed = seed
        }
        public var name: String { "n\(types.map(String.init) ?? "inf")-seed\(seed)" }
    }

    public let settings: Settings
    let launcher: TrainingLauncher
    let logger: Logger
    let say: @Sendable (String) -> Void
    public internal(set) var state: RegimeMapState
    private let lock: FolderLock

    var statePath: String { settings.out + "/map.json" }

    public init(settings: Settings, launcher: TrainingLauncher, logger: Logger, say: @escaping @Sendable (String) -> Void) throws {
        guard !settings.typeCounts.isEmpty, !settings.seeds.isEmpty, !settings.shots.isEmpty, !settings.steps.isEmpty else {
            throw StudyError("a map needs at least one type count, seed, K and step count")
        }
        guard settings.shots.contains(settings.mainShots) else { throw StudyError("the main K \(settings.mainShots) is not among the shots") }
        guard settings.plan.candidates.contains(where: { $0.family == .maml }) else { throw StudyError("the plan has no maml candidate") }
        self.settings = settings
        self.launcher = launcher
        self.logger = logger
        self.say = say
        lock = try FolderLock(folder: settings.out, purpose: "a regime map")
        let fingerprint = RegimeMapState.Fingerprint(settings)
        if FileManager.default.fileExists(atPath: settings.out + "/map.json") {
            let saved = try JSONFile.read(RegimeMapState.self, from: settings.out + "/map.json")
            guard saved.fingerprint == fingerprint else {
                throw StudyError("\(settings.out) holds a map with other settings; use another --out or the same options")
            }
            state = saved
            say("continuing the map in \(settings.out): \(saved.cells.count) cell(s) done")
        } else {
            state = RegimeMapState(fingerprint: fingerprint)
        }
    }

    /// The cells in the order they run.
    public var cells: [Cell] { settings.cells }

    /// Runs every cell not yet done, writing the report after each.
    public func run() throws {
        let clock = MonotonicClock()
        for (i, cell) in cells.enumerated() where state.cells[cell.name] == nil {
            if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
            say("map: cell \(i + 1)/\(cells.count), \(cell.types.map { "\($0) task types" } ?? "unbounded task types"), seed \(cell.seed)")
            let cellClock = MonotonicClock()
            let result = try runCell(cell)
            state.cells[cell.name] = result
            state.seconds[cell.name] = cellClock.now
            try JSONFile.write(state, to: statePath)
            // The report so far, so that an interrupted map shows every finished cell.
            try RegimeMapReport(state: state, settings: settings).write(printing: false)
            say("map: cell \(cell.name) done in \(ProgressLine.duration(cellClock.now)); \(ProgressLine.duration(clock.now)) this session")
        }
        if let cross = settings.crossDomain {
            for cell in cells where state.cells[cell.name] != nil && state.crossDomain?[cell.name]?.fingerprint != cross.fingerprint {
                if let sig = StopSignal.received { throw StudyStopped(signal: sig) }
                say("map: \(cell.name) meets \(cross.name)")
                state.crossDomain = (state.crossDomain ?? [:]).merging([cell.name: try crossDomainTest(cell, cross)]) { _, new in new }
                try JSONFile.write(state, to: statePath)
            }
        }
        try RegimeMapReport(state: state, settings: settings).write()
    }

    /// The plan of a cell: per-type heads only when the types are finite.
    func plan(for cell: Cell) -> StudyPlan {
        StudyPlan(candidates: settings.plan.candidates.filter { cell.types != nil || $0.family != .transferHeads })
    }

    /// The universe of a cell.
    func universe(_ cell: Cell) throws -> (DatasetSpec, TaskUniverse) {
        var options = settings.universe
        options.types = cell.types
        var volume = VolumeOptions()
        volume.size = settings.base.meta.model.input.height
        let source = try TaskUniverse(size: volume.size, options: options)
        var spec = DatasetSpec(kind: .universe, name: "universe", path: "universe", options: volume, identity: source.identity)
        spec.universe = options
        return (spec, source)
    }
}

/// Everything a map has measured, saved after every cell (`map.json`).
public struct RegimeMapState: Codable, Sendable {
    /// What decides a cell's results; a folder holding a map with other settings is not
    /// continued. The cells themselves (task-type counts and seeds) are not part of it: each
    /// cell is measured on its own, so a map continues with more of them (`--task-types`,
    /// `--seeds`) and reports the ones asked for.
    public struct Fingerprint: Codable, Equatable, Sendable {
        public var plan: StudyPlan
        public var config: TrainingConfig
        public var universe: TaskUniverse.Options
        public var shots: [Int]
        public var mainShots: Int
        public var steps: [Int]
        public var budget: Double
        public var fractions: [Double]
        public var validationPerTask: Int
        public var testPerTask: Int

        public init(_ settings: RegimeMap.Settings) {
            (plan, config, universe) = (settings.plan, settings.base, settings.universe)
            (shots, mainShots, steps, budget, fractions) = (settings.shots, settings.mainShots, settings.steps, settings.budget, settings.fractions)
            (validationPerTask, testPerTask) = (settings.validationPerTask, settings.testPerTask)
        }
    }

    /// A family's choice at one step count: the candidate and setting, and its
    /// meta-validation Dice.
    public struct Choice: Codable, Sendable, Equatable {
        public var candidate: String
        public var setting: Int
        public var validationDice: Double
    }

    /// What a cell measured.
    public struct CellResult: Codable, Sendable {
        /// Family -> s -> the choice made on meta-validation at the main K.
        public var choices: [Family: [Int: Choice]]
        /// Family -> K -> s -> the test instances' Dice.
        public var test: [Family: [Int: [Int: [Double]]]]
        /// K -> the test task of each instance (the same for every family).
        public var instanceTasks: [Int: [String]]
        /// Family -> budget fraction -> s -> test Dice of the instances at the main K (only the
        /// map's budget-curve cells), with the core-seconds of each fraction.
        public var budget: [Family: [BudgetPoint]]?
        /// Training steps and core-seconds of each candidate's final snapshot.
        public var spent: [String: TrainingPhase.Spent]
        /// Candidate -> setting -> s -> meta-validation Dice at the main K (what the choices
        /// were made from).
        public var validation: [String: [Int: [Int: Double]]]?
    }

    public struct BudgetPoint: Codable, Sendable {
        public var fraction: Double
        public var coreSeconds: Double
        /// s -> the test instances' Dice.
        public var dice: [Int: [Double]]
    }

    public var fingerprint: Fingerprint
    public var cells: [String: CellResult] = [:]
    /// Wall-clock seconds per cell.
    public var seconds: [String: Double] = [:]
    /// The per-step costs every cell uses (the first cell measures them).
    public var stepCost: [String: Double]?
    /// Cell -> its models' meta-test on the cross-domain dataset.
    public var crossDomain: [String: CrossDomainResult]?

    public struct CrossDomainResult: Codable, Sendable {
        public var dataset: String
        public var fingerprint: String
        /// Family -> K -> s -> the instances' Dice.
        public var test: [Family: [Int: [Int: [Double]]]]
        /// K -> the task of each instance.
        public var instanceTasks: [Int: [String]]
    }
}


extension RegimeMap {
    /// Task-type counts from a list such as "3,10,unbounded" (nil: unbounded).
    public static func typeCounts(_ text: String) throws -> [Int?] {
        try text.split(separator: ",").map {
            let t = $0.trimmingCharacters(in: .whitespaces)
            if t == "unbounded" { return nil }
            guard let v = Int(t), (1...100_000).contains(v) else { throw StudyError("task types take counts in 1...100000 or unbounded, not \(t)") }
            return v
        }
    }

    /// Cells from a list such as "3:0,unbounded:0" (N:seed).
    public static func cells(_ text: String) throws -> [Cell] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: ":").map(String.init)
            guard parts.count == 2, let seed = UInt64(parts[1]) else { throw StudyError("cells take N:seed, for example unbounded:0, not \(item)") }
            return Cell(types: try typeCounts(parts[0])[0], seed: seed)
        }
    }
}
