import ArgumentParser
import Cluster
import CommandOptions
import Core
import Datasets
import Engine
import Logging
import MetaLearning
import Pretraining
import Service
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Meta-train on a dataset, with workers over ZeroMQ or in this process.",
        discussion: """
            The defaults train W1 (docs/WORKLOADS.md: a 64x64 U-Net, 5-shot tasks, 5 inner steps, \
            exact second order) on the built-in synthetic family. Prints \
            `final_params_sha256 <hex>` on stdout at the end; final.safetensors and checkpoints \
            go to --checkpoint-dir.
            """)

    @Option(help: "\"synthetic\", \"synthetic-multi\", a Decathlon/nnU-Net folder or a folder of PNG task folders.") var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputSizeOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tasks: TaskOptions
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var numerics: NumericsOptions
    @OptionGroup var output: TrainingOutputOptions
    @Option(help: "Start from these parameters (a checkpoint or final.safetensors, e.g. from pretrain).") var initFrom: String?
    @Option(help: "Evaluate on held-out tasks every N steps (0: never).") var evalEvery = 0
    @Option(help: "Sampled instances per held-out task in each evaluation.") var evalPerTask = 4
    @Flag(help: "Task augmentation: sample superpixel pseudo-tasks on the meta-train tasks' images beside the labelled tasks.")
    var pseudoTasks = false
    @Flag(help: "Task augmentation: sample union tasks (every two meta-train tasks labelled on the same images, united) beside the labelled tasks.")
    var unionTasks = false

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let folder = output.checkpointDir ?? "checkpoints"
        var (datasetSpec, source) = try data.open(dataset, size: input.size(), logger: logger)
        let checkpoint = output.resume ? try Checkpoint.resumable(in: folder, logger: logger) : nil
        let split = checkpoint?.run.split ?? data.split(for: source)
        // A resumed run keeps its checkpoint's pseudo-tasks or union tasks, whatever the flags say.
        if let pseudo = checkpoint.map({ $0.run.dataset.pseudoBesideTasks }) ?? (pseudoTasks ? PseudoTaskOptions() : nil) {
            (datasetSpec, source) = try datasetSpec.addingPseudoTasks(pseudo, to: source, split: split)
        }
        if checkpoint.map({ $0.run.dataset.unionBesideTasks }) ?? unionTasks {
            (datasetSpec, source) = try datasetSpec.addingUnionTasks(to: source, split: split)
        }
        var evaluation = EvaluationSpec()
        evaluation.every = evalEvery
        evaluation.perTask = evalPerTask
        evaluation.support = tasks.shots
        evaluation.query = tasks.query
        var spec = RunSpec(runID: RunSpec.randomID(), training: try trainingConfig(size: input.size(), model: model, tasks: tasks, recipe: recipe),
                           dataset: datasetSpec, split: split, evaluation: evaluation)
        // The run's numerics, before anything computes: the checkpoint's when resuming.
        spec.numerics = try applyNumerics(checkpoint?.run.numerics ?? numerics.settings())
        if let checkpoint {
            guard checkpoint.run.dataset.identity == datasetSpec.identity else {
                throw ValidationError("the dataset differs from the checkpoint's (fingerprint \(datasetSpec.identity.fingerprint.prefix(16)) vs \(checkpoint.run.dataset.identity.fingerprint.prefix(16)))")
            }
            spec = checkpoint.run
            spec.numerics = NumericsSettings.applied ?? spec.numerics
        }
        var initial: [Float]?
        if let path = initFrom, checkpoint == nil {
            let config = spec.training.meta
            initial = try InitialParameters.load(path, layout: MetaLayout(config: config), innerLearningRate: config.innerLearningRate)
            logger.notice("initial parameters from \(path)")
        }
        let settings = cluster.settings()
        try settings.validate()
        try writeRunFile(into: folder)
        try startMetrics(cluster.metricsAddress, logger: logger)
        var outputs = TrainingLauncher.Outputs(checkpointFolder: folder, checkpointEvery: output.checkpointEvery, metricsPath: output.metrics)
        outputs.quiet = false
        let summary = try withFinalScrapeOnFailure {
            try TrainingLauncher(settings: settings, runFile: RunFile.effective, logger: logger)
                .run(spec: spec, source: source, outputs: outputs, resume: checkpoint, initial: initial)
        }
        if let sig = summary.stoppedBySignal {
            throw stoppedBySignal(sig, "checkpoint of step \(summary.steps) written to \(folder) (continue with --resume)")
        }
        print("final_params_sha256 \(summary.finalHash)")
    }
}
