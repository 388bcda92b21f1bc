import ArgumentParser
import Cluster
import CommandOptions
import Core
import Datasets
import Logging
import Service
import Study
import Training

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Compare meta-learning with transfer learning and training from scratch at equal compute, choosing every setting on meta-validation tasks.",
        discussion: """
            Trains every candidate of the plan (meta-learning recipes in the maml family; \
            transfer with a head per task and with one shared head; scratch; with \
            --pretraining also pretraining followed by MAML) for the same budget of \
            core-seconds, tunes every candidate's snapshots and adaptation settings on the \
            meta-validation tasks with the same number of settings each, picks the best \
            candidate of each family there, and only then meets the meta-test tasks, once. \
            --candidates lists the plan's names when given an unknown one. Writes report.txt, \
            results.json and figures into --out, and state.json after every stage: run the same \
            command again to continue an interrupted study. Without --in-process, \
            --local-workers or --bind, meta-training runs on two local worker processes.
            """)

    @Option(help: "\"synthetic-multi\" (conflicting tasks on shared images), \"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.")
    var dataset = "synthetic-multi"
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputSizeOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tasks: TaskOptions
    @OptionGroup var study: StudyOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var numerics: NumericsOptions
    @Option(help: "Output folder (continued if it holds a study with the same settings).") var out = "study"
    @Option(help: "Comma-separated candidate names to run (default: the whole plan).") var candidates: String?
    @Flag(help: "Also pretrain for half the budget (superpixel pseudo-tasks, or masked-image reconstruction: two candidates), then meta-train.") var pretraining = false
    @Option(help: "Meet this dataset's tasks at the meta-test instead of the held-out tasks (cross-domain: train and choose on --dataset, test here once).")
    var testDataset: String?
    @Option(parsing: .singleValue, help: "The test dataset's tasks to meet (globs, repeatable; default: all).") var testTasks: [String] = []

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let (spec, source) = try data.open(dataset, size: input.size(), logger: logger)
        let base = try trainingConfig(size: input.size(), model: model, tasks: tasks)
        // Union tasks need meta-train tasks labelled on the same images; without them the
        // plan has no union candidate.
        let split = data.split(for: source)
        let unionTasks: Bool
        do {
            _ = try UnionAugmentedSource(base: source, split: split)
            unionTasks = true
        } catch {
            logger.notice("no union-task candidate: \(error)")
            unionTasks = false
        }
        var plan = spec.kind == .universe ? StudyPlan.universe(finiteTypes: data.taskTypes != nil)
            : StudyPlan.standard(pretraining: pretraining, unionTasks: unionTasks)
        if let candidates {
            plan = try plan.selecting(candidates)
            guard plan.candidates.contains(where: { $0.family == .maml }) else { throw ValidationError("--candidates needs at least one maml candidate") }
        }
        var settings = StudyRunner.Settings(out: out, base: base, dataset: spec, split: split,
                                            protocol: try study.studyProtocol(.standard, shots: tasks.shots))
        let clusterSettings = cluster.settings(defaultLocalWorkers: 2)
        settings.threads = clusterSettings.hostThreads
        try clusterSettings.validate()
        try writeRunFile(into: out)
        try startMetrics(cluster.metricsAddress, logger: logger)
        let launcher = TrainingLauncher(settings: clusterSettings, runFile: RunFile.effective, logger: logger)
        var test: StudyRunner.TestSet?
        if let testDataset {
            let (testSpec, testSource) = try data.open(testDataset, size: input.size(), logger: logger)
            let tasks = testSource.taskNames.indices.filter { i in testTasks.isEmpty || testTasks.contains { TaskSplit.matches($0, testSource.taskNames[i]) } }
            guard !tasks.isEmpty else { throw ValidationError("no task of \(testDataset) matches \(testTasks)") }
            test = StudyRunner.TestSet(dataset: testSpec, source: testSource, tasks: tasks)
        }
        try applyNumerics(numerics.settings())
        let runner = try StudyRunner(settings: settings, plan: plan, source: source, launcher: launcher, logger: logger, test: test) { note($0) }
        do {
            try runner.run()
        } catch let stopped as StudyStopped {
            throw stoppedBySignal(stopped.signal, "run the same command to continue")
        }
    }
}
