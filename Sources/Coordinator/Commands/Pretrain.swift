import ArgumentParser
import Cluster
import CommandOptions
import Core
import Datasets
import Foundation
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
            (--outer-steps steps of --meta-batch x (--shots + --query) images, Adam at --meta-lr with \
            cosine decay); it keeps no checkpoints, so an interrupted run starts again. Both \
            write final.safetensors, which `train --init-from` starts from.
            """)

    enum Pretext: String, ExpressibleByArgument, CaseIterable {
        case superpixel, masked
    }

    @Option(help: "\"synthetic\" (its images without masks), a Decathlon/nnU-Net folder (imagesTs/) or a folder of PNG task folders.")
    var dataset = "synthetic"
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputSizeOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tasks: TaskOptions
    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var numerics: NumericsOptions
    @OptionGroup var output: TrainingOutputOptions
    @Flag(help: "Decathlon folders: also use the labelled cases' images (labels ignored).") var includeTrainingImages = false
    @Option(help: "superpixel: pseudo-tasks on the workers; masked: masked-image reconstruction with denoising, in this process.")
    var pretext: Pretext = .superpixel
    @Option(help: "Masked: the share of the image's patches (squares of 1/8 of its side) blanked in each view.") var maskedFraction = 0.5
    @Option(help: "Masked: standard deviation of the Gaussian noise added to the input (z-score units).") var noise: Float = 0.1
    @Option(help: "Approximate superpixels per image.") var superpixels = 48
    @Option(help: "Neighbouring superpixels merged into a pseudo-label, at most.") var maximumMerged = 2

    @OptionGroup var runFile: RunFileOptions

    func run() throws {
        let logger = makeLogger(cluster.logLevel)
        StopSignal.install()
        let folder = output.checkpointDir ?? "pretrain"
        var pseudo = PseudoTaskOptions()
        pseudo.superpixels = superpixels
        pseudo.maximumMerged = maximumMerged
        guard (4...1000).contains(superpixels), (0...10).contains(maximumMerged) else {
            throw ValidationError("--superpixels must be in 4...1000 and --maximum-merged in 0...10")
        }
        let (datasetSpec, source) = try DatasetSpec.openPseudo(dataset, options: data.volumeOptions(size: input.size()), pseudo: pseudo,
                                                               includeTraining: includeTrainingImages, logger: logger)
        let config = try trainingConfig(size: input.size(), model: model, tasks: tasks, recipe: recipe)
        let checkpoint = output.resume && pretext == .superpixel ? try Checkpoint.resumable(in: folder, logger: logger) : nil
        let applied = try applyNumerics(checkpoint?.run.numerics ?? numerics.settings())
        if pretext == .masked {
            guard let images = (source as? PseudoTaskSource)?.images else { throw ValidationError("no unlabelled images in \(dataset)") }
            return try pretrainMasked(images, config: config, dataset: datasetSpec, folder: folder)
        }
        var spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: datasetSpec, split: source.defaultSplit,
                           evaluation: EvaluationSpec(), numerics: applied)
        if let checkpoint { spec = checkpoint.run }
        note("pretraining on \(source.taskNames.count) group(s) of unlabelled images: \(source.taskNames.prefix(6).joined(separator: ", "))\(source.taskNames.count > 6 ? ", ..." : "")")
        let settings = cluster.settings()
        try settings.validate()
        try writeRunFile(into: folder)
        try startMetrics(cluster.metricsAddress, logger: logger)
        let summary = try withFinalScrapeOnFailure {
            try TrainingLauncher(settings: settings, runFile: RunFile.effective, logger: logger)
                .run(spec: spec, source: source, outputs: .init(checkpointFolder: folder, checkpointEvery: output.checkpointEvery,
                                                                metricsPath: output.metrics),
                     resume: checkpoint, initial: nil)
        }
        if let sig = summary.stoppedBySignal { throw stoppedBySignal(sig, "at step \(summary.steps); continue with --resume") }
        note("wrote \(folder)/final.safetensors (start meta-training from it with train --init-from)")
        print("final_params_sha256 \(summary.finalHash)")
    }

    /// Masked-image reconstruction with denoising, in this process (`MaskedPretraining`).
    private func pretrainMasked(_ images: UnlabelledImages, config: TrainingConfig, dataset: DatasetSpec, folder: String) throws {
        guard !output.resume else {
            throw ValidationError("--resume: masked reconstruction keeps no checkpoints (it trains in this process); run it again without --resume")
        }
        var options = MaskedReconstructionSource.Options()
        options.maskedFraction = maskedFraction
        options.noise = noise
        let pretraining: MaskedPretraining
        do { pretraining = try MaskedPretraining(images: images, options: options, config: config, dataset: dataset) } catch {
            throw ValidationError("\(error) (--masked-fraction must be in 0...1 and --noise finite and at least 0)")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        note("masked reconstruction on \(pretraining.source.taskNames.count) group(s) of unlabelled images, in this process: \(config.steps) steps of \(pretraining.imagesPerStep) images")
        try writeRunFile(into: folder)
        let progress = Throttle(every: 10)
        let hash = try pretraining.run(writingTo: folder + "/final.safetensors", runFile: RunFile.effective) { step in
            if progress.due() || step == config.steps {
                note("masked reconstruction: step \(step)/\(config.steps)  ETA \(ProgressLine.duration(progress.eta(done: step, total: config.steps)))")
            }
            return StopSignal.received == nil
        }
        guard let hash else {
            throw stoppedBySignal(StopSignal.received ?? SIGINT, "nothing written (masked reconstruction keeps no checkpoints: run it again)")
        }
        note("wrote \(folder)/final.safetensors (start meta-training from it with train --init-from)")
        print("final_params_sha256 \(hash)")
    }
}
