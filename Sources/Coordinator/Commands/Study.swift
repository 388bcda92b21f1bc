import ArgumentParser
import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Service
import Training

struct Study: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare meta-learning with transfer learning and training from scratch at equal compute, choosing every setting on meta-validation tasks.",
        discussion: """
            Trains every candidate of the plan (MAML first and second order, MAML++, \
            meta-transfer from a jointly trained model, ANIL (a head-only inner loop), task augmentation \
            (superpixel pseudo-tasks beside the tasks), Reptile, Proto-MAML++ and Proto-ANIL (each task \
            starting from its prototype head), MAML++ with 10 inner steps, MAML++ with union tasks \
            beside the tasks (every two meta-train structures labelled on the same images, united; \
            when the data has such tasks), transfer with one shared head and with a head per task \
            (adapted from the mean head or from the prototype head), scratch; with --pretraining also \
            pretraining followed by MAML, with superpixel pseudo-tasks or masked-image \
            reconstruction as the pretext) for \
            the same budget of core-seconds, tunes every candidate's snapshot and adaptation \
            settings on the meta-validation tasks with the same number of settings each, picks \
            the best candidate of each family there, and only then meets the meta-test tasks, \
            once. Writes report.txt, results.json, dice_vs_budget.png, dice_vs_shots.png, \
            per_task.png and adaptation.png into --out, and state.json after every stage: run \
            the same command again to continue an interrupted study. Without --in-process, \
            --local-workers or --bind, meta-training runs on two local worker processes.
            """)

    @Option(help: "\"synthetic-multi\" (conflicting tasks on shared images), \"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.")
    var dataset = "synthetic-multi"
    @OptionGroup var data: DataOptions
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Output folder (continued if it holds a study with the same settings).") var out = "study"
    @Option(help: "Training budget of every candidate, in core-seconds on this machine.") var budget = 600.0
    @Option(help: "Comma-separated candidate names to run (default: the whole plan).") var candidates: String?
    @Flag(help: "Also pretrain for half the budget (superpixel pseudo-tasks, or masked-image reconstruction: two candidates), then meta-train.") var pretraining = false
    @Option(help: "Tasks per meta-batch (and per joint-training step).") var metaBatch = 4
    @Option(help: "Inner SGD steps in meta-training.") var innerSteps = 5
    @Option(help: "Inner learning rate (initial value when learned).") var innerLr: Float = 0.01
    @Option(help: "U-Net channels of the first level.") var baseChannels = 8
    @Option(help: "U-Net depth (poolings).") var depth = 2
    @Option(help: "Shots K of the main comparison.") var shots = 5
    @Option(help: "Shots of the Dice-against-K curve, comma-separated.") var shotsCurve = "1,5,10,20"
    @Option(help: "Meta-validation instances per task.") var validationPerTask = 6
    @Option(help: "Meta-test instances per task.") var testPerTask = 10
    @Option(help: "Read the per-step costs from another study's state.json instead of measuring them (same costs, same step counts, same results).")
    var costsFrom: String?
    @Option(help: "Seed.") var seed: UInt64 = 0

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let (spec, source) = try DatasetSpec.open(dataset, options: data.volumeOptions(), logger: logger)
        var base = TrainingConfig()
        base.meta = MetaConfig(model: UNetConfig(height: data.imageSize, width: data.imageSize, depth: depth,
                                                 baseChannels: baseChannels).spec)
        base.meta.supportShots = 5
        base.meta.queryShots = 5
        base.meta.innerSteps = innerSteps
        base.meta.innerLearningRate = innerLr
        base.metaBatch = metaBatch
        base.seed = seed
        do { try base.validate() } catch { throw ValidationError("\(error)") }
        guard budget.isFinite, budget > 0, budget <= 1e7 else { throw ValidationError("--budget takes core-seconds in (0, 1e7]") }
        let curve = shotsCurve.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !curve.isEmpty, curve.allSatisfy({ (1...64).contains($0) }), (1...64).contains(shots) else {
            throw ValidationError("--shots and --shots-curve take shot counts in 1...64")
        }
        guard (1...1000).contains(validationPerTask), (1...1000).contains(testPerTask) else {
            throw ValidationError("--validation-per-task and --test-per-task take 1...1000")
        }

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
        var plan = StudyPlan.standard(pretraining: pretraining, unionTasks: unionTasks)
        if let candidates {
            let names = candidates.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let known = Set(plan.candidates.map(\.name))
            if let unknown = names.first(where: { !known.contains($0) }) {
                throw ValidationError("no candidate \(unknown); the plan has \(plan.candidates.map(\.name).joined(separator: ", "))")
            }
            plan.candidates = plan.candidates.filter { names.contains($0.name) }
            guard plan.candidates.contains(where: { $0.family == "maml" }) else { throw ValidationError("--candidates needs at least one maml candidate") }
        }

        var settings = StudyRunner.Settings(out: out, base: base, dataset: spec, split: split, budget: budget)
        settings.shots = curve
        settings.mainShots = shots
        settings.validationPerTask = validationPerTask
        settings.testPerTask = testPerTask
        var clusterOptions = cluster
        if !cluster.inProcess && cluster.localWorkers == 0 && cluster.bind == nil {
            clusterOptions = try ClusterOptions.local(workers: 2, threads: cluster.threads, logLevel: cluster.logLevel)
        }
        settings.threads = clusterOptions.inProcess ? cluster.threads : max(clusterOptions.localWorkers, 1) * cluster.threads
        if let costsFrom { settings.costs = try StudyState.load(costsFrom).stepCost }

        try clusterOptions.checkPolicy()
        try writeRunFile(into: out)
        let progress = ProgressLine(total: 1, batch: 1, quiet: false)
        let runner = try StudyRunner(settings: settings, plan: plan, source: source, cluster: clusterOptions, logger: logger) { progress.note($0) }
        do {
            try runner.run()
        } catch let stopped as StudyStopped {
            FileHandle.standardError.write(Data("stopped by signal \(stopped.signal); run the same command to continue\n".utf8))
            throw ExitCode(128 + stopped.signal)
        }
    }
}
