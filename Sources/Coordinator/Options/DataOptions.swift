import ArgumentParser
import Datasets
import Foundation
import Logging
import Training

/// Options shared by every command that reads a dataset.
struct DataOptions: ParsableArguments {
    @Option(help: "Model input size: images are generated or resized to this many pixels square.")
    var imageSize = 64
    @Option(parsing: .singleValue,
            help: "Hold out tasks matching this glob for meta-testing (repeatable; default: the dataset's own split).")
    var holdOut: [String] = []
    @Option(parsing: .singleValue,
            help: "Tasks matching this glob are meta-validation, on which settings are chosen (repeatable; default: the dataset's own split).")
    var validate: [String] = []
    @Option(help: "Slice axis for NIfTI volumes: axial, coronal or sagittal.") var axis: SliceAxis = .axial
    @Option(help: "CT window LEVEL,WIDTH in HU instead of percentile clipping and z-score.") var ctWindow: String?
    @Flag(help: "Deterministic light augmentation (flips, small rotations, intensity jitter).") var augment = false
    @Flag(help: "Skip unreadable or inconsistent cases with a warning instead of stopping.") var skipBad = false
    @Flag(help: "Draw support and query across volumes, not from one volume.") var acrossVolumes = false
    @Flag(help: "Also sample slices that do not contain the task's label.") var includeEmptySlices = false

    /// The dataset: "synthetic", a Decathlon/nnU-Net folder (with dataset.json) or a folder of
    /// PNG task folders.
    func load(_ dataset: String, logger: Logger) throws -> TaskSource {
        try DatasetSpec.open(dataset, options: volumeOptions(), logger: logger).1
    }

    func split(for source: TaskSource) -> TaskSplit {
        let d = source.defaultSplit
        return TaskSplit(validationPatterns: validate.isEmpty ? (holdOut.isEmpty ? d.validationPatterns : []) : validate,
                         testPatterns: holdOut.isEmpty ? d.testPatterns : holdOut)
    }
}

extension SliceAxis: ExpressibleByArgument {}

extension DataOptions {
    /// Preprocessing options from the flags.
    /// The model input sizes the U-Net takes (two 2x2 poolings): refuses any other.
    static func checkImageSize(_ size: Int) throws {
        guard (16...1024).contains(size), size % 4 == 0 else { throw ValidationError("--image-size must be a multiple of 4 in 16...1024") }
    }

    func volumeOptions() throws -> VolumeOptions {
        try Self.checkImageSize(imageSize)
        var options = VolumeOptions()
        options.size = imageSize
        options.axis = axis
        options.augment = augment
        options.skipBad = skipBad
        options.sameVolume = !acrossVolumes
        options.requireLabel = !includeEmptySlices
        if let window = ctWindow {
            let parts = window.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, parts[1] > 0 else { throw ValidationError("--ct-window takes LEVEL,WIDTH, for example 40,400") }
            options.normalisation = .ctWindow(level: parts[0], width: parts[1])
        }
        return options
    }
}
