import ArgumentParser
import Cluster
import CommandOptions
import Core
import Foundation
import Logging
import Service
import Study
import Training

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
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
            differences, and Dice at K = 1 and 5 shots. Meta-training runs on two local worker \
            processes over CURVE-encrypted ZeroMQ. Writes summary.txt and results.json into \
            --out, and each study's report, results and figures into its own folder; the same \
            command continues an interrupted demo.
            """)

    @Option(help: "Output folder.") var out: String
    @Option(help: "The meta-learning recipe: a maml candidate of the study plan (\(Demo.recipes.map(\.name).joined(separator: ", "))).")
    var recipe = Demo.defaultRecipe
    @Option(help: "Learning rate of the two transfer baselines' joint training.") var transferLr: Float = 1e-3
    @Option(help: "Only these scenarios, comma-separated: \(Demo.scenarios.map(\.name).joined(separator: ", ")).")
    var scenarios = Demo.scenarios.map(\.name).joined(separator: ",")
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
        let base = try trainingConfig(size: input.size(.demo), model: model, tasks: tasks, preset: .demo)
        var settings = Demo.Settings(out: out, base: base, protocol: try study.studyProtocol(.demo, shots: tasks.shots))
        settings.recipe = recipe
        settings.transferLearningRate = transferLr
        settings.scenarios = scenarios.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let clusterSettings = cluster.settings(defaultLocalWorkers: 2)
        try clusterSettings.validate()
        // The demo's numerics: oneDNN's AVX2 kernels, so its table comes out on any x86-64
        // machine, and every inner step's passes kept (a few MB each for its small model).
        try applyNumerics(numerics.settings(defaults: Demo.numerics))
        let clock = MonotonicClock()
        let demo = try Demo(settings: settings, launcher: TrainingLauncher(settings: clusterSettings, runFile: RunFile.effective, logger: logger),
                            logger: logger) { note($0) }
        try writeRunFile(into: out)
        let text: String
        do { text = try demo.run() } catch let stopped as StudyStopped {
            throw stoppedBySignal(stopped.signal, "run the same command to continue")
        }
        print("\n" + text)
        note("wrote \(out)/summary.txt, results.json and the studies \(settings.scenarios.map { out + "/" + $0 }.joined(separator: ", ")) in \(ProgressLine.duration(clock.now))")
    }
}
