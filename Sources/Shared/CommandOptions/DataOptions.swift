import ArgumentParser
import Datasets
import Foundation
import Logging
import Training

/// How a dataset is read and split: shared by every command that reads one.
public struct DataOptions: ParsableArguments {
    public init() {}
    @Option(parsing: .singleValue,
            help: "Hold out tasks matching this glob for meta-testing (repeatable; default: the dataset's own split).")
    public var holdOut: [String] = []
    @Option(parsing: .singleValue,
            help: "Tasks matching this glob are meta-validation, on which settings are chosen (repeatable; default: the dataset's own split).")
    public var validate: [String] = []
    @Option(help: "Slice axis for NIfTI volumes: axial, coronal or sagittal.") public var axis: SliceAxis = .axial
    @Option(help: "NIfTI volumes: in-plane spacing in mm that slices are resampled to, keeping their aspect ratio (the model sees patches of --image-size); `median` for the dataset's median spacing; `squash` to resize whole slices to --image-size instead.")
    public var spacing = "median"
    @Option(help: "CT window LEVEL,WIDTH in HU instead of percentile clipping and z-score.") public var ctWindow: String?
    @Flag(help: "Deterministic light augmentation (flips, small rotations, intensity jitter).") public var augment = false
    @Flag(help: "Skip unreadable or inconsistent cases with a warning instead of stopping.") public var skipBad = false
    @Flag(help: "Draw support and query across volumes, not from one volume.") public var acrossVolumes = false
    @Flag(help: "Draw the support from one volume and the query from another (no query slice beside a support slice).")
    public var separateVolumes = false
    @Flag(help: "Also sample slices that do not contain the task's label.") public var includeEmptySlices = false
    @Option(help: "Universe: meta-train task types (default: unbounded, fresh parameters for every sample).") public var taskTypes: Int?
    @Flag(help: "Universe: swap foreground and background in half the meta-train samples (meta-augmentation).")
    public var metaAugmentation = false
    @Option(help: "Universe: the seed that picks its task types (the held-out types depend on it too).") public var universeSeed: UInt64 = 0

    /// The task universe's settings from the flags.
    public var universe: TaskUniverse.Options {
        TaskUniverse.Options(types: taskTypes, metaAugmentation: metaAugmentation, seed: universeSeed)
    }

    /// Opens a dataset with these options at `size` pixels: its description and source.
    public func open(_ dataset: String, size: Int, logger: Logger) throws -> (DatasetSpec, TaskSource) {
        try DatasetSpec.open(dataset, options: volumeOptions(size: size), universe: universe, logger: logger)
    }

    /// The dataset: "synthetic", a Decathlon/nnU-Net folder (with dataset.json) or a folder of
    /// PNG task folders, with images of `size` pixels square.
    public func load(_ dataset: String, size: Int, logger: Logger) throws -> TaskSource {
        try open(dataset, size: size, logger: logger).1
    }

    public func split(for source: TaskSource) -> TaskSplit {
        let d = source.defaultSplit
        return TaskSplit(validationPatterns: validate.isEmpty ? (holdOut.isEmpty ? d.validationPatterns : []) : validate,
                         testPatterns: holdOut.isEmpty ? d.testPatterns : holdOut)
    }

    /// Preprocessing options from the flags, for images of `size` pixels square.
    public func volumeOptions(size: Int) throws -> VolumeOptions {
        var options = VolumeOptions()
        options.size = size
        options.axis = axis
        options.augment = augment
        options.skipBad = skipBad
        options.sameVolume = !acrossVolumes
        options.separateVolumes = separateVolumes
        options.resampling = try Self.resampling(spacing)
        options.requireLabel = !includeEmptySlices
        if let window = ctWindow { options.normalisation = try Self.ctWindow(window) }
        return options
    }

    /// `--spacing`.
    public static func resampling(_ text: String) throws -> VolumeOptions.Resampling {
        switch text {
        case "median": return .medianSpacing
        case "squash": return .squash
        default:
            guard let mm = Double(text), mm.isFinite, mm >= 0.01, mm <= 100 else {
                throw ValidationError("--spacing takes a spacing in mm (0.01...100), median or squash")
            }
            return .spacing(mm)
        }
    }

    /// `--ct-window LEVEL,WIDTH`.
    public static func ctWindow(_ text: String) throws -> IntensityNormalisation {
        let parts = text.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, parts.allSatisfy(\.isFinite), parts[1] > 0 else { throw ValidationError("--ct-window takes LEVEL,WIDTH, for example 40,400") }
        return .ctWindow(level: parts[0], width: parts[1])
    }
}

extension SliceAxis: ExpressibleByArgument {}
