import ArgumentParser
import CommandOptions
import Core
import Datasets
import Evaluation
import Foundation
import Service
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Meta-test a trained model on any dataset: adapt from K labelled images per task instance, score the rest.",
        discussion: """
            Reports Dice, IoU, HD95 (pixels, or mm when the voxel size is known), precision and \
            recall, each as a mean with a 95% confidence interval over sampled task instances. \
            With --baselines also the U-Net trained from scratch on the K images, and transfer \
            learning (joint supervised training on the other tasks, then fine-tuning), both \
            with a fixed preset rather than settings tuned on meta-validation: a quick check, \
            not a fair comparison (`study` is).
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "\"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.") var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var adaptation: AdaptationOptions
    @OptionGroup var numerics: NumericsOptions
    @Option(help: "Query images scored per instance.") var query = 5
    @Option(parsing: .singleValue, help: "Tasks to evaluate (globs; default: the held-out split, or every task).") var tasks: [String] = []
    @Option(help: "Sampled instances per task.") var instancesPerTask = 10
    @Flag(help: "Also run the scratch and transfer baselines (a fixed preset, not tuned).") var baselines = false
    @Option(help: "Joint-training steps of the transfer baseline (meta-batches of the training tasks).") var transferSteps = 100
    @Option(help: "Fine-tuning steps of the baselines (default: the preset's).") var fineTuneSteps: Int?
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Sampling seed.") var seed: UInt64 = 2024
    @Option(help: "Write the results as JSON here.") var out: String?

    @OptionGroup var runFile: RunFileOptions

    func validate() throws {
        if let fineTuneSteps, !(0...AdaptationSetting.maximumSteps).contains(fineTuneSteps) {
            throw ValidationError("--fine-tune-steps must be in 0...\(AdaptationSetting.maximumSteps)")
        }
        guard (1...1_000_000).contains(transferSteps) else { throw ValidationError("--transfer-steps must be in 1...1000000") }
        guard (1...1000).contains(instancesPerTask) else { throw ValidationError("--instances-per-task must be in 1...1000") }
        guard (1...256).contains(query) else { throw ValidationError("--query must be in 1...256") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        let logger = makeLogger(.warning)
        let model = try TrainedModel.load(checkpoint)
        try applyNumerics(numerics.settings(defaults: model.run.numerics))
        // Images are prepared at the model's input size.
        let (_, source) = try data.open(dataset, size: model.config.model.input.height, logger: logger)
        let split = data.split(for: source)
        var selected = tasks.isEmpty ? split.partition(source.taskNames).test : source.taskNames.indices.filter { i in
            tasks.contains { TaskSplit.matches($0, source.taskNames[i]) }
        }
        if selected.isEmpty && tasks.isEmpty { selected = Array(source.taskNames.indices) }
        guard !selected.isEmpty else { throw ValidationError("no task matches \(tasks)") }
        var evaluation = ModelEvaluation(model: model, adaptation: try adaptation.adaptation(model), source: source, tasks: selected)
        evaluation.shots = adaptation.shots
        evaluation.query = query
        evaluation.instancesPerTask = instancesPerTask
        evaluation.seed = seed
        evaluation.baselines = baselines
        evaluation.transferSteps = transferSteps
        evaluation.fineTuneSteps = fineTuneSteps
        let progress = Throttle(every: 5)
        let results = try evaluation.run(threads: threads, note: { note($0) }) { done, total in
            if progress.due() || done == total { note("meta-test \(done)/\(total)  ETA \(ProgressLine.duration(progress.eta(done: done, total: total)))") }
        }
        let report = EvaluationReport(
            title: "\(source.identity.name): \(selected.count) task(s), \(adaptation.shots)-shot, \(instancesPerTask) instances each",
            checkpoint: checkpoint, dataset: source.identity.name, shots: adaptation.shots, tasks: selected.map { source.taskNames[$0] },
            results: results, baselineNote: baselines ? ModelEvaluation.baselineNote : nil, runFile: RunFile.effective)
        print(report.text)
        if let out { try JSONFile.write(report, to: out) }
    }
}
