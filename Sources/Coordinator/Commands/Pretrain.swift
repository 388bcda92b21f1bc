import ArgumentParser
import Core
import Datasets
import Foundation
import Logging
import Pretraining
import Service
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain an initial model on unlabelled images with self-supervised superpixel pseudo-tasks (SSL-ALPNet style).",
        discussion: """
            Meta-trains on pseudo-tasks built from unlabelled images: segment a superpixel (or a \
            merged group of neighbouring superpixels) in differently augmented views of one image. \
            Runs on the same coordinator/worker machinery as `train` (same faults survived, same \
            determinism) and writes final.safetensors, which `train --init-from` starts from.
            """)

    @Option(help: "\"synthetic\" (its images without masks), a Decathlon/nnU-Net folder (imagesTs/) or a folder of PNG task folders.")
    var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cluster: ClusterOptions
    @Flag(help: "Decathlon folders: also use the labelled cases' images (labels ignored).") var includeTrainingImages = false
    @Option(help: "Approximate superpixels per image.") var superpixels = 48
    @Option(help: "Neighbouring superpixels merged into a pseudo-label, at most.") var maximumMerged = 2
    @Option(help: "Folder for checkpoints and final.safetensors.") var checkpointDir = "pretrain"
    @Option(help: "Checkpoint every N steps.") var checkpointEvery = 50
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.") var resume = false
    @Option(help: "Append one JSON object per step to this file.") var metrics: String?

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        var pseudo = PseudoTaskOptions()
        pseudo.superpixels = superpixels
        pseudo.maximumMerged = maximumMerged
        guard (4...1000).contains(superpixels), (0...10).contains(maximumMerged) else {
            throw ValidationError("--superpixels must be in 4...1000 and --maximum-merged in 0...10")
        }
        let (datasetSpec, source) = try DatasetSpec.openPseudo(dataset, options: data.volumeOptions(), pseudo: pseudo,
                                                               includeTraining: includeTrainingImages, logger: logger)
        var spec = RunSpec(runID: RunSpec.randomID(), training: try training.config(imageSize: data.imageSize), dataset: datasetSpec,
                           split: source.defaultSplit, evaluation: EvaluationSpec())
        let checkpoint = resume ? try resumeCheckpoint(in: checkpointDir, logger: logger) : nil
        if let checkpoint { spec = checkpoint.run }
        FileHandle.standardError.write(Data("pretraining on \(source.taskNames.count) group(s) of unlabelled images: \(source.taskNames.prefix(6).joined(separator: ", "))\(source.taskNames.count > 6 ? ", ..." : "")\n".utf8))
        try cluster.checkPolicy()
        try writeRunFile(into: checkpointDir)
        let summary = try runTraining(spec: spec, source: source, cluster: cluster, checkpointDir: checkpointDir,
                                      checkpointEvery: checkpointEvery, metrics: metrics, resume: checkpoint, initial: nil, logger: logger)
        if let sig = summary.stoppedBySignal {
            FileHandle.standardError.write(Data("stopped by signal \(sig) at step \(summary.steps); continue with --resume\n".utf8))
            throw ExitCode(128 + sig)
        }
        FileHandle.standardError.write(Data("wrote \(checkpointDir)/final.safetensors (start meta-training from it with train --init-from)\n".utf8))
        print("final_params_sha256 \(summary.finalHash)")
    }
}
