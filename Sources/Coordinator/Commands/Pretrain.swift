import ArgumentParser
import Core
import Datasets
import Evaluation
import Foundation
import Logging
import MetaLearning
import Pretraining
import Service
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain an initial model on unlabelled images: superpixel pseudo-tasks (SSL-ALPNet style) or masked-image reconstruction.",
        discussion: """
            --pretext superpixel (the default) meta-trains on pseudo-tasks built from unlabelled \
            images: segment a superpixel (or a merged group of neighbouring superpixels) in \
            differently augmented views of one image. It runs on the same coordinator/worker \
            machinery as `train` (same faults survived, same determinism). \
            --pretext masked trains the U-Net in this process, on one thread, to reconstruct \
            augmented views of the images from copies with patches blanked and noise added \
            (--steps steps of --meta-batch x (--support + --query) images, Adam at --meta-lr with \
            cosine decay); it keeps no checkpoints, so an interrupted run starts again. Both \
            write final.safetensors, which `train --init-from` starts from.
            """)

    enum Pretext: String, ExpressibleByArgument, CaseIterable {
        case superpixel, masked
    }

    @Option(help: "\"synthetic\" (its images without masks), a Decathlon/nnU-Net folder (imagesTs/) or a folder of PNG task folders.")
    var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cluster: ClusterOptions
    @Flag(help: "Decathlon folders: also use the labelled cases' images (labels ignored).") var includeTrainingImages = false
    @Option(help: "superpixel: pseudo-tasks on the workers; masked: masked-image reconstruction with denoising, in this process.")
    var pretext: Pretext = .superpixel
    @Option(help: "Masked: the share of the image's patches (squares of 1/8 of its side) blanked in each view.") var maskedFraction = 0.5
    @Option(help: "Masked: standard deviation of the Gaussian noise added to the input (z-score units).") var noise: Float = 0.1
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
        if pretext == .masked {
            guard let images = (source as? PseudoTaskSource)?.images else { throw ValidationError("no unlabelled images in \(dataset)") }
            return try pretrainMasked(images, dataset: datasetSpec, logger: logger)
        }
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

    /// Masked-image reconstruction with denoising (`MaskedReconstructionSource`): joint
    /// training with one shared head, in this process, from the random initialisation.
    private func pretrainMasked(_ images: UnlabelledImages, dataset: DatasetSpec, logger: Logger) throws {
        guard !resume else {
            throw ValidationError("--resume: masked reconstruction keeps no checkpoints (it trains in this process); run it again without --resume")
        }
        var options = MaskedReconstructionSource.Options()
        options.maskedFraction = maskedFraction
        options.noise = noise
        let source: MaskedReconstructionSource
        do { source = try MaskedReconstructionSource(images: images, options: options) } catch {
            throw ValidationError("\(error) (--masked-fraction must be in 0...1 and --noise finite and at least 0)")
        }
        try FileManager.default.createDirectory(atPath: checkpointDir, withIntermediateDirectories: true)
        var config = try training.config(imageSize: data.imageSize)
        // The pretext trains the model alone: no inner rates to learn.
        config.meta.learnedInnerRates = false
        let layout = try MetaLayout(config: config.meta)
        let steps = config.steps
        let joint = JointTraining(config: config, source: source, trainTasks: Array(source.taskNames.indices),
                                  settings: .init(heads: .shared, learningRate: config.optimizer.learningRate, steps: steps, cosine: true))
        FileHandle.standardError.write(Data("masked reconstruction on \(source.taskNames.count) group(s) of unlabelled images, in this process: \(steps) steps of \(config.metaBatch * (config.meta.supportShots + config.meta.queryShots)) images\n".utf8))
        try writeRunFile(into: checkpointDir)
        let progress = Throttle(every: 10)
        let model = try joint.train(initial: layout.model.initialValues(seed: config.initSeed ?? config.seed)) { step, _ in
            if progress.due() || step == steps {
                FileHandle.standardError.write(Data("masked reconstruction: step \(step)/\(steps)  ETA \(ProgressLine.duration(progress.eta(done: step, total: steps)))\n".utf8))
            }
            return StopSignal.received == nil
        }
        if let sig = StopSignal.received {
            FileHandle.standardError.write(Data("stopped by signal \(sig); nothing written (masked reconstruction keeps no checkpoints: run it again)\n".utf8))
            throw ExitCode(128 + sig)
        }
        var spec = dataset
        spec.pseudo = nil
        spec.identity = source.identity
        let run = RunSpec(runID: RunSpec.randomID(), training: config, dataset: spec, split: source.defaultSplit, evaluation: EvaluationSpec())
        let hash = SHA256.hex(floats: model.parameters)
        try Safetensors.write(Safetensors.File(tensors: ParameterFile.tensors(model.parameters, layout: layout),
                                               metadata: ["format": "medmaml-parameters-1", "step": "\(steps)", "run_id": run.runID,
                                                          "pretext": "masked-reconstruction",
                                                          "run_spec": String(decoding: try canonicalJSON(run), as: UTF8.self), "sha256": hash]),
                              to: checkpointDir + "/final.safetensors")
        FileHandle.standardError.write(Data("wrote \(checkpointDir)/final.safetensors (start meta-training from it with train --init-from)\n".utf8))
        print("final_params_sha256 \(hash)")
    }
}
