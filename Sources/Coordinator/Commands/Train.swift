import ArgumentParser
import Core
import Datasets
import Foundation
import Logging
import MetaLearning
import Pretraining
import Service
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Meta-train on a dataset, with workers over ZeroMQ or in this process.",
        discussion: """
            The defaults train W1 (see W1.md) on the built-in synthetic family. Prints \
            `final_params_sha256 <hex>` on stdout at the end; final.safetensors and checkpoints \
            go to --checkpoint-dir.
            """)

    @Option(help: "\"synthetic\", a Decathlon/nnU-Net folder or a folder of PNG task folders.") var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Folder for checkpoints, final.safetensors and metrics.") var checkpointDir = "checkpoints"
    @Option(help: "Checkpoint every N steps (0: only on SIGINT/SIGTERM and at the end).") var checkpointEvery = 50
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
    @Option(help: "Start from these parameters (a checkpoint or final.safetensors, e.g. from pretrain).") var initFrom: String?
    @Option(help: "Evaluate on held-out tasks every N steps (0: never).") var evalEvery = 0
    @Option(help: "Sampled instances per held-out task in each evaluation.") var evalPerTask = 4
    @Option(help: "Append one JSON object per step to this file.") var metrics: String?
    @Flag(help: "Task augmentation: sample superpixel pseudo-tasks on the meta-train tasks' images beside the labelled tasks.")
    var pseudoTasks = false
    @Flag(help: "Task augmentation: sample union tasks (every two meta-train tasks labelled on the same images, united) beside the labelled tasks.")
    var unionTasks = false

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        var options = try data.volumeOptions()
        var (datasetSpec, source) = try DatasetSpec.open(dataset, options: options, logger: logger)
        options = datasetSpec.options
        let checkpoint = resume ? try resumeCheckpoint(in: checkpointDir, logger: logger) : nil
        let split = checkpoint?.run.split ?? data.split(for: source)
        // A resumed run keeps its checkpoint's pseudo-tasks or union tasks, whatever the flags say.
        if let pseudo = checkpoint.map({ $0.run.dataset.pseudoBesideTasks }) ?? (pseudoTasks ? PseudoTaskOptions() : nil) {
            (datasetSpec, source) = try datasetSpec.addingPseudoTasks(pseudo, to: source, split: split)
        }
        if checkpoint.map({ $0.run.dataset.unionBesideTasks }) ?? unionTasks {
            (datasetSpec, source) = try datasetSpec.addingUnionTasks(to: source, split: split)
        }
        var config = try training.config(imageSize: data.imageSize)
        var spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: datasetSpec, split: split,
                           evaluation: { var e = EvaluationSpec(); e.every = evalEvery; e.perTask = evalPerTask
                                         e.support = training.support; e.query = training.query; return e }())
        if let checkpoint {
            spec = checkpoint.run
            config = spec.training
            guard spec.dataset.identity == datasetSpec.identity else {
                throw ValidationError("the dataset differs from the checkpoint's (fingerprint \(datasetSpec.identity.fingerprint.prefix(16)) vs \(spec.dataset.identity.fingerprint.prefix(16)))")
            }
        }
        var initial: [Float]?
        if let path = initFrom, checkpoint == nil {
            initial = try InitialParameters.load(path, layout: MetaLayout(config: config.meta), innerLearningRate: config.meta.innerLearningRate)
            logger.notice("initial parameters from \(path)")
        }
        try cluster.checkPolicy()
        try writeRunFile(into: checkpointDir)
        let summary = try runTraining(spec: spec, source: source, cluster: cluster, checkpointDir: checkpointDir,
                                      checkpointEvery: checkpointEvery, metrics: metrics, resume: checkpoint,
                                      initial: initial, logger: logger)
        if let sig = summary.stoppedBySignal {
            FileHandle.standardError.write(Data("\nstopped by signal \(sig) at step \(summary.steps); checkpoint written to \(checkpointDir) (continue with --resume)\n".utf8))
            throw ExitCode(128 + sig)
        }
        print("final_params_sha256 \(summary.finalHash)")
    }
}
