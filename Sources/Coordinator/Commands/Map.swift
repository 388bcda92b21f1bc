import ArgumentParser
import Cluster
import CommandOptions
import Core
import Datasets
import Logging
import Service
import Study
import Training

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "The regime map: on the task universe, where does meta-learning beat transfer learning? Held-out Dice against task types N, shots K, adaptation steps s and budget, over several training seeds.",
        discussion: """
            For every N and seed, trains every candidate for the same budget on a universe of N \
            meta-training task types (a small study), chooses each family's adaptation setting \
            for each step count s on the meta-validation rules at the main K, and meets the \
            meta-test rules once at every K. Summaries pair the families on the same instances \
            and give 95% intervals over seeds, task types and instances (hierarchical \
            bootstrap). Writes report.txt, results.json, map.svg, difference.svg and index.html \
            into --out, and map.json after every cell: run the same command again to continue, \
            or with more --task-types or --seeds to add cells to a map. \
            With the defaults (6 values of N, 3 seeds, 150 core-seconds per candidate) it takes \
            about 5 core-hours: on 2 cores, 7 to 11 minutes a cell with finite N and 6 with \
            unbounded N (training is about half of it; the rest is choosing on meta-validation \
            and the meta-test at every K and step count).
            """)

    @Option(help: "Output folder (continued if it holds a map with the same settings; other task types or seeds add cells).") var out = "map"
    @Option(help: "Meta-training task types per column, comma-separated; `unbounded` for fresh types every sample.")
    var taskTypes = "3,10,30,100,1000,unbounded"
    @Option(help: "Training seeds (0, 1, ...).") var seeds = 3
    @Option(help: "Adaptation step counts, comma-separated.") var stepsCurve = "0,1,2,5,10,20,50,100"
    @Option(help: "Fast adaptation: at most this many steps.") var fastSteps = 5
    @Option(help: "Comma-separated candidate names (default: the universe plan's recipes and baselines).") var candidates: String?
    @Option(help: "Cells whose snapshots give Dice against budget, as N:seed, comma-separated, or none (default: the first and last N, seed 0); a cell already measured keeps what it has.")
    var budgetCells: String?
    @Option(help: "Universe: the seed that picks its task types.") var universeSeed: UInt64 = 0
    @Option(help: "Afterwards, every cell's models meet this dataset's tasks once, with the settings chosen on the universe (cross-domain; support and query from different volumes).")
    var testDataset: String?
    @Option(parsing: .singleValue, help: "The test dataset's tasks (globs, repeatable; default: all).") var testTasks: [String] = []
    @Option(help: "Shots of the cross-domain meta-test, comma-separated.") var testDatasetShots = "1,3,5"
    @Option(help: "Cross-domain instances per task.") var testDatasetPerTask = 10
    @OptionGroup var input: InputSizeOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tasks: TaskOptions
    @OptionGroup var study: StudyOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var numerics: NumericsOptions

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let base = try trainingConfig(size: input.size(.map), model: model, tasks: tasks, preset: .map)
        let types = try RegimeMap.typeCounts(taskTypes)
        let protocolSettings = try study.studyProtocol(.map, shots: tasks.shots)
        let plan = try candidates.map { try StudyPlan.universe(finiteTypes: true).selecting($0) } ?? StudyPlan.universe(finiteTypes: true)
        var settings = RegimeMap.Settings(out: out, base: base, universe: .init(seed: universeSeed), plan: plan)
        settings.typeCounts = types
        guard (1...100).contains(seeds) else { throw ValidationError("--seeds takes 1...100") }
        settings.seeds = (0..<UInt64(seeds)).map { $0 }
        settings.shots = protocolSettings.shots
        settings.mainShots = tasks.shots
        settings.steps = try stepsCurve.split(separator: ",").map {
            guard let s = Int($0.trimmingCharacters(in: .whitespaces)), (0...10_000).contains(s) else { throw ValidationError("--steps-curve takes step counts in 0...10000, for example 0,1,5") }
            return s
        }
        settings.fastSteps = fastSteps
        settings.budget = protocolSettings.budget
        settings.fractions = protocolSettings.fractions
        settings.validationPerTask = protocolSettings.validationPerTask
        settings.testPerTask = protocolSettings.testPerTask
        settings.costs = protocolSettings.costs
        if budgetCells == "none" {
            settings.budgetCurveCells = []
        } else if let budgetCells {
            settings.budgetCurveCells = try RegimeMap.cells(budgetCells)
        } else {
            guard let first = types.first, let last = types.last else { throw ValidationError("--task-types is empty") }
            settings.budgetCurveCells = Array(Set([RegimeMap.Cell(types: first, seed: 0), RegimeMap.Cell(types: last, seed: 0)]))
                .sorted { ($0.types ?? .max) < ($1.types ?? .max) }
        }
        if let testDataset {
            var options = VolumeOptions()
            options.size = base.meta.model.input.height
            options.separateVolumes = true
            let (spec, source) = try DatasetSpec.open(testDataset, options: options, logger: logger)
            let tasks = source.taskNames.indices.filter { i in testTasks.isEmpty || testTasks.contains { TaskSplit.matches($0, source.taskNames[i]) } }
            guard !tasks.isEmpty else { throw ValidationError("no task of \(testDataset) matches \(testTasks)") }
            let shots = try testDatasetShots.split(separator: ",").map {
                guard let k = Int($0.trimmingCharacters(in: .whitespaces)), (1...64).contains(k) else { throw ValidationError("--test-dataset-shots takes shot counts in 1...64") }
                return k
            }
            guard (1...1000).contains(testDatasetPerTask) else { throw ValidationError("--test-dataset-per-task takes 1...1000") }
            settings.crossDomain = .init(name: spec.name, source: source, tasks: tasks, shots: shots, perTask: testDatasetPerTask)
        }
        let clusterSettings = cluster.settings(defaultLocalWorkers: 2)
        settings.threads = clusterSettings.hostThreads
        try clusterSettings.validate()
        try writeRunFile(into: out)
        try startMetrics(cluster.metricsAddress, logger: logger)
        try applyNumerics(numerics.settings())
        let map = try RegimeMap(settings: settings, launcher: TrainingLauncher(settings: clusterSettings, runFile: RunFile.effective, logger: logger),
                                logger: logger) { note($0) }
        do { try map.run() } catch let stopped as StudyStopped {
            throw stoppedBySignal(stopped.signal, "run the same command to continue")
        }
    }
}
