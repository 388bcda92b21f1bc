import ArgumentParser
import Datasets
import Evaluation
import Foundation
import Logging
import MetaLearning
import Service
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Meta-test a trained model on any dataset: adapt from K labelled images per task instance, score the rest.",
        discussion: """
            Reports Dice, IoU, HD95 (pixels, or mm when the voxel size is known), precision and \
            recall, each as a mean with a 95% confidence interval over sampled task instances. \
            With --baselines also the U-Net trained from scratch on the K images, and transfer \
            learning (joint supervised training on the other tasks, then fine-tuning).
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "\"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.") var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @Option(help: "Labelled support images per instance (K).") var shots = 5
    @Option(help: "Query images scored per instance.") var query = 5
    @Option(parsing: .singleValue, help: "Tasks to evaluate (globs; default: the held-out split, or every task).") var tasks: [String] = []
    @Option(help: "Sampled instances per task.") var instancesPerTask = 10
    @Option(help: "Inner steps when adapting (default: as trained).") var innerSteps: Int?
    @Flag(help: "Also run the scratch and transfer baselines.") var baselines = false
    @Option(help: "Joint-training steps of the transfer baseline (meta-batches of the training tasks).") var transferSteps = 100
    @Option(help: "Fine-tuning steps of the baselines (default: the standard preset's).") var fineTuneSteps: Int?
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Sampling seed.") var seed: UInt64 = 2024
    @Option(help: "Write the results as JSON here.") var out: String?

    @OptionGroup var runFile: RunFileOptions

    func validate() throws {
        if let innerSteps, !(0...Adapt.maxSteps).contains(innerSteps) { throw ValidationError("--inner-steps must be in 0...\(Adapt.maxSteps)") }
        if let fineTuneSteps, !(0...Adapt.maxSteps).contains(fineTuneSteps) { throw ValidationError("--fine-tune-steps must be in 0...\(Adapt.maxSteps)") }
        guard (1...1_000_000).contains(transferSteps) else { throw ValidationError("--transfer-steps must be in 1...1000000") }
        guard (1...1000).contains(instancesPerTask) else { throw ValidationError("--instances-per-task must be in 1...1000") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be in 1...64") }
    }

    func run() throws {
        let logger = makeLogger(.warning)
        let model = try TrainedModel.load(checkpoint)
        var options = try data.volumeOptions()
        let input = model.config.model.input
        if options.size != input.height {
            FileHandle.standardError.write(Data("using the model's input size \(input.height) for the images\n".utf8))
            options.size = input.height
        }
        let (_, source) = try DatasetSpec.open(dataset, options: options, logger: logger)
        let split = data.split(for: source)
        var selected = tasks.isEmpty ? split.partition(source.taskNames).test : source.taskNames.indices.filter { i in
            tasks.contains { TaskSplit.matches($0, source.taskNames[i]) }
        }
        if selected.isEmpty && tasks.isEmpty { selected = Array(source.taskNames.indices) }
        guard !selected.isEmpty else { throw ValidationError("no task matches \(tasks)") }
        let instances = TaskSampler.evaluation(seed: seed, pool: selected, perTask: instancesPerTask)
        var methods = [MetaTest.Method(name: "maml", adaptation: .maml(meta: model.meta, config: model.config,
                                                                     steps: innerSteps ?? model.config.innerSteps))]
        if baselines {
            let layout = try MetaLayout(config: model.config)
            let random = layout.model.initialValues(seed: seed)
            let others = source.taskNames.indices.filter { !selected.contains($0) }
            let preset = fineTuneSteps.map { Baselines.Preset.standard.withFineTuneSteps($0) } ?? .standard
            methods.append(.init(name: "scratch", adaptation: .fineTune(start: random, settings: preset.scratch)))
            if others.isEmpty {
                FileHandle.standardError.write(Data("transfer baseline skipped: every task is being evaluated, none is left to train on\n".utf8))
            } else {
                var config = model.run.training
                config.meta.supportShots = shots
                config.meta.queryShots = query
                FileHandle.standardError.write(Data("training the transfer baseline on \(others.count) other task(s)\n".utf8))
                let transfer = try JointTraining(config: config, source: source, trainTasks: others,
                                                 settings: .init(heads: .shared, learningRate: preset.jointLearningRate, steps: transferSteps))
                    .train(initial: random).parameters
                methods.append(.init(name: "transfer", adaptation: .fineTune(start: transfer, settings: preset.transfer)))
            }
        }
        let progress = Throttle(every: 5)
        let results = try MetaTest(source: source, model: model.config.model, instances: instances, seed: seed,
                                   support: shots, query: query).run(methods, threads: threads) { done, total in
            if progress.due() || done == total {
                FileHandle.standardError.write(Data("meta-test \(done)/\(total)  ETA \(ProgressLine.duration(progress.eta(done: done, total: total)))\n".utf8))
            }
        }
        print(ResultsTable.text(results, title: "\(source.identity.name): \(selected.count) task(s), \(shots)-shot, \(instancesPerTask) instances each"))
        for r in results where r.perTaskDice.count > 1 {
            print("\nper task (\(r.name)):")
            for (name, ci) in r.perTaskDice.sorted(by: { $0.key < $1.key }) { print("  " + name.padding(toLength: 44, withPad: " ", startingAt: 0) + "\(ci)") }
        }
        if let out {
            try ResultsTable.json(results, extra: ["checkpoint": checkpoint, "dataset": source.identity.name, "shots": shots,
                                                   "tasks": selected.map { source.taskNames[$0] },
                                                   "run_file": RunFile.effective ?? ""])
                .write(to: URL(fileURLWithPath: out))
        }
    }
}
