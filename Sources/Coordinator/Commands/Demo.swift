import ArgumentParser
import Core
import Datasets
import Engine
import Evaluation
import Foundation
import Logging
import MetaLearning
import Service
import Training

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The main job: the best meta-learning recipe against tuned transfer learning and scratch, on conflicting tasks and on a structure x style split.",
        discussion: """
            Runs the study protocol (`medmaml-coordinator study`) twice, small: on \
            synthetic-multi, where every task of a style labels a different structure on the \
            same images (the conflicting-tasks split: the paired structure is held out, the \
            ring structure is meta-validation), and on synthetic, one structure per image (an \
            unseen structure and an unseen imaging style held out). Each time it trains the \
            meta-learning recipe (--recipe), transfer with a head per task, transfer with one \
            shared head, and scratch with the same budget of core-seconds, chooses every \
            snapshot and adaptation setting on the meta-validation tasks with the same number \
            of settings each, and meets the meta-test tasks once: Dice with 95% CIs, paired \
            differences, and Dice at K = 1 and 5 shots. Meta-training runs on local worker \
            processes over CURVE-encrypted ZeroMQ. Writes summary.txt and results.json into \
            --out, and each study's report, results and pictures into its own folder.
            """)

    @Option(help: "Output folder.") var out: String
    @Option(help: "Training budget of every method, in core-seconds on this machine.") var budget = 100.0
    @Option(help: "The meta-learning recipe: a MAML candidate of the study plan (\(StudyPlan.standard(pretraining: false).candidates.filter { $0.family == "maml" }.map(\.name).joined(separator: ", "))).")
    var recipe = Self.defaultRecipe
    @Option(help: "Learning rate of the two transfer baselines' joint training.") var transferLr: Float = 1e-3
    @Option(help: "Model input size.") var imageSize = 32
    @Option(help: "U-Net channels of the first level (16: W1).") var baseChannels = 8
    @Option(help: "Tasks per meta-batch (and per joint-training step).") var metaBatch = 4
    @Option(help: "Local worker processes for meta-training (0: in process).") var localWorkers = 2
    @Option(help: "Compute threads per worker, and for tuning and testing.") var threads = 1
    @Option(help: "Meta-validation instances per task.") var validationPerTask = 3
    @Option(help: "Meta-test instances per task.") var testPerTask = 10
    @Option(help: "Shots of the Dice-against-K comparison, comma-separated (the main comparison is 5-shot).") var shotsCurve = "1,5"
    @Option(help: "Only these scenarios, comma-separated: conflicting, structure-style.") var scenarios = "conflicting,structure-style"
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Log level.") var logLevel: Logger.Level = .warning

    @OptionGroup var runFile: RunFileOptions

    /// The recipe the full study chose on meta-validation (README, "Is meta-learning the right tool?"):
    /// MAML++ (learned per-layer per-step inner rates, multi-step loss), 0.428 against plain
    /// second order's 0.428 (by 0.0003) and Reptile's and first order's 0.418, on 64
    /// meta-validation instances with every candidate of today's plan.
    static let defaultRecipe = "maml++-second"

    /// Core-seconds per training step of the default model (32x32, 8 channels, meta-batch 4),
    /// measured by the study's calibration on the development machine (AMD EPYC, AVX2). The
    /// demo converts its budget to step counts with these, so it gives the same table on any
    /// machine and any load; other model sizes are calibrated on the spot. Recipes added
    /// after that machine was gone are scaled from a calibration on a later machine by their
    /// ratio to second order there: Reptile measured 0.069 core-seconds against second order's
    /// 0.195 (oneDNN's AVX2 kernels), so 0.589 x 0.069 / 0.195 = 0.208. Proto-MAML++ is scaled
    /// by its ratio to MAML++, the recipe it extends: three calibrations side by side gave
    /// 0.760 against 0.727 core-seconds (summed), so 0.862 x 0.760 / 0.727 = 0.901. Proto-ANIL
    /// runs the same passes as ANIL (the prototypes are arithmetic on the support features)
    /// and measured the same (0.101 against 0.102 core-seconds in three calibrations side by
    /// side), so it takes ANIL's 0.090. MAML++ with 10 inner steps and MAML++ with union tasks
    /// are scaled by their ratio to MAML++ in three training runs side by side (median step
    /// seconds, one thread): 1.935 and 1.018, so 0.862 x 1.935 = 1.668 and 0.862 x 1.018 =
    /// 0.878 (a union task renders its images twice).
    static let referenceCosts: [String: Double] = [
        "joint-perTask": 0.078, "joint-shared": 0.0754, "meta-first": 0.2065, "meta-second": 0.589,
        "meta-second+lslr+msl": 0.862, "pretrain": 0.606, "meta-second+head": 0.090,
        "meta-second+pseudo": 0.589, "meta-reptile": 0.208, "meta-second+lslr+msl+proto": 0.901,
        "meta-second+head+proto": 0.090, "meta-second+lslr+msl+steps10": 1.668, "meta-second+lslr+msl+union": 0.878,
    ]

    /// The demo's two comparisons: a name, the dataset, and what it shows.
    static let allScenarios: [(name: String, dataset: String, title: String)] = [
        ("conflicting", "synthetic-multi", "conflicting tasks: every structure labelled on the same images, the paired structure held out"),
        ("structure-style", "synthetic", "structure x style: the paired structure and the x-ray style held out"),
    ]

    func run() throws {
        let logger = makeLogger(logLevel)
        StopSignal.install()
        let clock = MonotonicClock()
        let standard = StudyPlan.standard(pretraining: false)
        guard let mamlCandidate = standard.candidates.first(where: { $0.name == recipe && $0.family == "maml" }) else {
            throw ValidationError("--recipe takes one of \(standard.candidates.filter { $0.family == "maml" }.map(\.name).joined(separator: ", "))")
        }
        try DataOptions.checkImageSize(imageSize)
        guard transferLr.isFinite, transferLr > 0, transferLr < 1 else { throw ValidationError("--transfer-lr takes a rate in (0, 1)") }
        guard budget.isFinite, budget > 0, budget <= 1e6 else { throw ValidationError("--budget takes core-seconds in (0, 1e6]") }
        guard (0...64).contains(localWorkers), (1...64).contains(threads) else { throw ValidationError("--local-workers takes 0...64, --threads 1...64") }
        guard (1...1000).contains(validationPerTask), (1...1000).contains(testPerTask) else {
            throw ValidationError("--validation-per-task and --test-per-task take 1...1000")
        }
        let curve = shotsCurve.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !curve.isEmpty, curve.allSatisfy({ (1...64).contains($0) }) else { throw ValidationError("--shots-curve takes shot counts in 1...64") }
        let wanted = scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let chosenScenarios = Self.allScenarios.filter { wanted.contains($0.name) }
        guard !chosenScenarios.isEmpty, wanted.allSatisfy({ w in Self.allScenarios.contains { $0.name == w } }) else {
            throw ValidationError("--scenarios takes conflicting and/or structure-style")
        }
        let plan = StudyPlan.demo(maml: mamlCandidate, transferLearningRate: transferLr)
        let cluster = try ClusterOptions.local(workers: localWorkers, threads: threads, logLevel: logLevel)
        try writeRunFile(into: out)
        let progress = ProgressLine(total: 1, batch: 1, quiet: false)
        @Sendable func say(_ s: String) { progress.note(s) }

        var summary: [String] = []
        var combined: [String: Any] = [:]
        for scenario in chosenScenarios {
            var options = VolumeOptions()
            options.size = imageSize
            let (spec, source) = try DatasetSpec.open(scenario.dataset, options: options, logger: logger)
            var base = TrainingConfig()
            base.meta = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize, depth: 2, baseChannels: baseChannels).spec)
            base.metaBatch = metaBatch
            base.seed = seed
            do { try base.validate() } catch { throw ValidationError("\(error)") }
            var settings = StudyRunner.Settings(out: out + "/" + scenario.name, base: base, dataset: spec,
                                                split: source.defaultSplit, budget: budget)
            // Snapshots at half and all of the budget: the number of outer steps is chosen on
            // meta-validation like every other setting.
            settings.fractions = [0.5, 1]
            settings.shots = curve
            settings.mainShots = 5
            settings.validationPerTask = validationPerTask
            settings.testPerTask = testPerTask
            settings.threads = max(localWorkers, 1) * threads
            if imageSize == 32 && baseChannels == 8 && metaBatch == 4 { settings.costs = Self.referenceCosts }
            say("demo: \(scenario.title)")
            let runner = try StudyRunner(settings: settings, plan: plan, source: source, cluster: cluster, logger: logger) { say($0) }
            do {
                try runner.run()
            } catch let stopped as StudyStopped {
                FileHandle.standardError.write(Data("stopped by signal \(stopped.signal); run the same command to continue\n".utf8))
                throw ExitCode(128 + stopped.signal)
            }
            let line = Self.headline(runner.state, scenario: scenario.name, shots: curve)
            summary.append(contentsOf: line.text)
            combined[scenario.name] = line.json
        }

        let header = [
            "MedMAML demo: \(recipe) against tuned transfer learning and scratch, \(Int(budget)) core-seconds of training each, every setting chosen on meta-validation, meta-test once",
            "",
        ]
        let text = (header + summary).joined(separator: "\n")
        print("\n" + text)
        try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: out + "/summary.txt"))
        combined["recipe"] = recipe
        combined["budget_core_seconds"] = budget
        combined["seed"] = Int(seed)
        combined["image_size"] = imageSize
        combined["seconds"] = Int(clock.now)
        try JSONSerialization.data(withJSONObject: combined, options: [.sortedKeys, .prettyPrinted])
            .write(to: URL(fileURLWithPath: out + "/results.json"))
        say("wrote \(out)/summary.txt, results.json and the studies \(chosenScenarios.map { out + "/" + $0.name }.joined(separator: ", ")) in \(ProgressLine.duration(clock.now))")
    }

    /// The lines of one scenario in the summary: each method's 5-shot Dice, MAML's paired
    /// difference against each baseline, and Dice against K.
    static func headline(_ state: StudyState, scenario: String, shots: [Int]) -> (text: [String], json: [String: Any]) {
        var lines = ["\(scenario) (meta-test, 5-shot, Dice with 95% CI):"]
        var json: [String: Any] = [:]
        var methods: [String: Any] = [:]
        for family in StudyPlan.families {
            guard let r = state.test[family] else { continue }
            let candidate = state.chosen[family]?.candidate ?? family
            lines.append("  " + family.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "%.3f ± %.3f", r.dice.mean, r.dice.halfWidth) + "   (\(candidate))")
            var perK: [String: Double] = [:]
            for p in state.shotsCurve[family] ?? [] { perK["\(Int(p.x))"] = p.dice.mean }
            methods[family] = ["dice": r.dice.mean, "ci95": r.dice.halfWidth, "instances": r.dice.count,
                               "candidate": candidate, "dice_by_shots": perK] as [String: Any]
        }
        var differences: [String: Any] = [:]
        for (name, d) in state.differences.sorted(by: { $0.key < $1.key }) {
            let verdict = d.lower > 0 ? "above zero" : (d.upper < 0 ? "below zero" : "includes zero")
            lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0)
                + String(format: "%+.3f [%+.3f, %+.3f]  ", d.mean, d.lower, d.upper) + verdict)
            differences[name] = ["mean": d.mean, "lower": d.lower, "upper": d.upper]
        }
        for k in shots {
            let row = StudyPlan.families.compactMap { family in
                state.shotsCurve[family]?.first { $0.x == Double(k) }.map { "\(family) " + String(format: "%.3f", $0.dice.mean) }
            }
            lines.append("  K=\(k): " + row.joined(separator: ", "))
        }
        lines.append("")
        json["methods"] = methods
        json["paired_differences"] = differences
        return (lines, json)
    }
}
