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
        abstract: "The main job: meta-train on the synthetic family with local workers, then meta-test on held-out tasks against baselines.",
        discussion: """
            Meta-trains W1 twice (second and first order) on the synthetic family's meta-train \
            tasks with local worker processes, trains the transfer baseline (ordinary supervised \
            training on the same data budget), then adapts every method from 5 labelled images \
            to the same sampled instances of the held-out tasks (an unseen structure and an \
            unseen imaging style). Prints the table and writes, into --out: results.json, \
            metrics.jsonl, training_curves.png, adaptation.png, final.safetensors and checkpoints.
            """)

    @Option(help: "Output folder.") var out: String
    @Option(help: "Meta-training steps (each of the two MAML runs).") var steps = 120
    @Option(help: "Tasks per meta-batch.") var metaBatch = 4
    @Option(help: "Model input size.") var imageSize = 64
    @Option(help: "U-Net channels of the first level (16: W1).") var baseChannels = 16
    @Option(help: "Local worker processes.") var localWorkers = 2
    @Option(help: "Compute threads per worker (and for the in-process phases).") var threads = 1
    @Option(help: "Meta-test instances per held-out task.") var instancesPerTask = 8
    @Option(help: "Held-out evaluation during meta-training every N steps.") var evalEvery = 20
    @Option(help: "Inner SGD steps when MAML adapts at meta-test (5 in training).") var testInnerSteps = 20
    @Option(help: "Adam fine-tuning steps for the scratch and transfer baselines.") var fineTuneSteps = 30
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Log level.") var logLevel: Logger.Level = .warning

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(logLevel)
        StopSignal.install()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let clock = MonotonicClock()
        let progress = ProgressLine(total: steps, batch: metaBatch, quiet: false)
        @Sendable func say(_ s: String) { progress.note(s) }

        var options = VolumeOptions()
        options.size = imageSize
        let (dataset, source) = try DatasetSpec.open("synthetic", options: options, logger: logger)
        let split = source.defaultSplit
        let partition = split.partition(source.taskNames)
        let (train, test) = (partition.train, partition.test)
        var base = TrainingConfig()
        base.meta = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize, baseChannels: baseChannels).spec)
        base.metaBatch = metaBatch
        base.steps = steps
        base.seed = seed
        // MAML++'s cosine decay of the meta learning rate: a short run's last iterate is
        // otherwise as noisy as its last few meta-batches (held-out Dice swung 0.47-0.61
        // between evaluations without it).
        base.optimizer.cosineSteps = steps
        var evaluation = EvaluationSpec()
        evaluation.every = evalEvery
        evaluation.perTask = 2
        let cluster = try ClusterOptions.local(workers: localWorkers, threads: threads, logLevel: logLevel)
        say("MedMAML demo: \(train.count) meta-train tasks, \(test.count) held-out tasks (\(split.testPatterns.joined(separator: ", "))), \(steps) steps x \(metaBatch) tasks, \(localWorkers) local worker(s) x \(threads) thread(s)")

        // 1-2. Meta-training, second and first order, on the same task samples.
        var runs: [MetaOrder: (RunSummary, RunSpec)] = [:]
        for order in [MetaOrder.second, .first] {
            var config = base
            config.meta.order = order
            let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: split, evaluation: evaluation)
            say("meta-training, \(order.rawValue) order")
            let folder = out + "/checkpoints-\(order.rawValue)"
            let metrics = out + (order == .second ? "/metrics.jsonl" : "/metrics-first.jsonl")
            try? FileManager.default.removeItem(atPath: metrics)
            let summary = try runTraining(spec: spec, source: source, cluster: cluster, checkpointDir: folder, checkpointEvery: 0,
                                          metrics: metrics, resume: nil, initial: nil, logger: logger)
            if let sig = summary.stoppedBySignal { throw ExitCode(128 + sig) }
            runs[order] = (summary, spec)
        }
        try? FileManager.default.removeItem(atPath: out + "/final.safetensors")
        try FileManager.default.copyItem(atPath: out + "/checkpoints-second/final.safetensors", toPath: out + "/final.safetensors")

        // 3. Transfer baseline: supervised joint training on the same task samples.
        let model = base.meta.model
        let layout = try MetaLayout(config: base.meta)
        let random = layout.model.initialValues(seed: seed)
        say("transfer baseline: supervised training on the same \(steps * metaBatch) task samples")
        let transferProgress = Throttle(every: 5)
        let preset = Baselines.Preset.standard.withFineTuneSteps(fineTuneSteps)
        let transfer = try JointTraining(config: base, source: source, trainTasks: train,
                                         settings: .init(heads: .shared, learningRate: preset.jointLearningRate, steps: steps))
            .train(initial: random) { done, _ in
                if transferProgress.due() || done == steps {
                    say("transfer: step \(done)/\(steps)  ETA \(ProgressLine.duration(transferProgress.eta(done: done, total: steps)))")
                }
                return true
            }.parameters

        // 4. Meta-test: every method on the same instances.
        let instances = TaskSampler.evaluation(seed: seed &+ 7919, pool: test, perTask: instancesPerTask)
        let methods = [
            MetaTest.Method(name: "maml_second", adaptation: .maml(meta: runs[.second]!.0.finalParameters, config: base.meta, steps: testInnerSteps)),
            MetaTest.Method(name: "maml_first", adaptation: .maml(meta: runs[.first]!.0.finalParameters, config: base.meta, steps: testInnerSteps)),
            MetaTest.Method(name: "scratch", adaptation: .fineTune(start: random, settings: preset.scratch)),
            MetaTest.Method(name: "transfer", adaptation: .fineTune(start: transfer, settings: preset.transfer)),
        ]
        let metaTest = MetaTest(source: source, model: model, instances: instances, seed: seed &+ 7919, support: 5, query: 5)
        say("meta-test: \(methods.count) methods x \(instances.count) instances (\(instancesPerTask) per held-out task), 5-shot")
        let testProgress = Throttle(every: 5)
        let results = try metaTest.run(methods, threads: max(localWorkers * threads, 1)) { done, total in
            if testProgress.due() || done == total {
                say("meta-test: \(done)/\(total)  ETA \(ProgressLine.duration(testProgress.eta(done: done, total: total)))")
            }
        }

        // 5. Outputs.
        let table = ResultsTable.text(results, title: "Held-out tasks, 5-shot (\(test.count) tasks: \(split.testPatterns.joined(separator: ", ")))")
        print(table)
        try ResultsTable.json(results, extra: [
            "steps": steps, "meta_batch": metaBatch, "image_size": imageSize, "seed": Int(seed),
            "held_out_tasks": test.map { source.taskNames[$0] }, "shots": 5, "query": 5,
            "seconds": Int(clock.now), "final_params_sha256_second": runs[.second]!.0.finalHash,
            "maml_test_inner_steps": testInnerSteps, "baseline_fine_tune_steps": fineTuneSteps,
        ]).write(to: URL(fileURLWithPath: out + "/results.json"))
        try Curves.render(second: out + "/metrics.jsonl", first: out + "/metrics-first.jsonl").write(to: out + "/training_curves.png")
        let pictureInstances = test.map { task in TaskRef(task: task, index: instances.first { $0.task == task }!.index) }
        try AdaptationPictures.render(source: source, model: model, instances: pictureInstances, seed: seed &+ 7919,
                                      before: runs[.second]!.0.finalParameters, method: methods[0].adaptation)
            .write(to: out + "/adaptation.png")
        say("wrote \(out)/results.json, metrics.jsonl, training_curves.png, adaptation.png, final.safetensors in \(ProgressLine.duration(clock.now))")
    }
}
