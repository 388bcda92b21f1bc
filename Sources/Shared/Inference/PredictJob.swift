import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Training

/// `medmaml-coordinator predict`, nnU-Net style: adapt a trained model once to one or several
/// structures from a few labelled cases, then segment every case of a folder at its own
/// resolution and write NIfTI label maps on each input's grid and header. Every input is
/// checked before anything is written; outputs go to a hidden folder first and move into place
/// only when every case succeeded, so a failed run leaves nothing half-written.
public struct PredictJob {
    /// A labelled support case: a NIfTI volume and its label map, or a folder of PNG images and
    /// a folder of masks with the same names.
    public struct Support: Sendable {
        public var images: String
        public var labels: String
        public init(images: String, labels: String) {
            self.images = images
            self.labels = labels
        }
    }

    public struct Settings: Sendable {
        public var checkpoint: String
        public var support: [Support] = []
        public var labels: [Int] = []
        public var input: String
        public var output: String
        public var setting: AdaptationSetting?
        public var shots = 5
        /// How support slices become examples (one patch around the structure, or all of each slice).
        public var cut = SupportSet.Cut.aroundStructure
        public var window: Int?
        public var overlap = 0.5
        public var threads = 1
        /// Write the adapted parameters here, to reuse without adapting again.
        public var saveAdapted: String?
        /// Use these adapted parameters instead of adapting.
        public var adapted: String?
        /// Label maps (same file names as the inputs) to score the predictions against.
        public var reference: String?
        /// PNG support masks are binary (any non-zero pixel is the one label), not label maps.
        public var binaryPNGMasks = false

        public init(checkpoint: String, input: String, output: String) {
            self.checkpoint = checkpoint
            self.input = input
            self.output = output
        }
    }

    /// What a run did, per case (`predictions.json`).
    public struct Report: Codable, Sendable {
        public struct Case: Codable, Sendable {
            public var input: String
            public var output: String
            public var seconds: Double
            /// Label value -> 3D scores against the reference, when one was given.
            public var scores: [Int: VolumeScores]?
        }
        public var checkpoint: String
        public var labels: [Int]
        public var preprocessing: String
        public var window: Int
        public var overlap: Double
        public var adaptSeconds: Double
        public var cases: [Case]
    }

    public let settings: Settings

    public init(settings: Settings) throws(DataError) {
        guard (0...0.95).contains(settings.overlap) else { throw .badRequest("--overlap takes 0...0.95") }
        guard (1...256).contains(settings.threads) else { throw .badRequest("--threads takes 1...256") }
        guard settings.adapted != nil || (!settings.support.isEmpty && !settings.labels.isEmpty) else {
            throw .badRequest("give --support and --support-masks with at least one --label, or --adapted FILE")
        }
        guard settings.labels.allSatisfy({ (1...255).contains($0) }) else { throw .badRequest("--label takes values 1...255") }
        self.settings = settings
    }

    /// The NIfTI cases of the input folder, sorted.
    static func cases(in folder: String) throws(DataError) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw .unreadable(path: folder, reason: "not a readable folder")
        }
        let cases = names.filter { !$0.hasPrefix(".") && ($0.hasSuffix(".nii.gz") || $0.hasSuffix(".nii")) }.sorted()
        guard !cases.isEmpty else { throw .emptyTask(task: folder, reason: "the folder holds no .nii or .nii.gz case") }
        return cases
    }

    /// The output name of an input case: nnU-Net's channel suffix `_0000` dropped.
    static func outputName(_ input: String) -> String {
        let ext = input.hasSuffix(".nii.gz") ? ".nii.gz" : ".nii"
        var base = String(input.dropLast(ext.count))
        if base.hasSuffix("_0000") { base.removeLast(5) }
        return base + ".nii.gz"
    }

    /// Reads a volume for prediction: 3D, finite (the reader checks), on its label map's grid.
    static func volume(_ path: String) throws(DataError) -> NIfTIVolume {
        let v = try NIfTIVolume.read(path: path)
        guard v.extraVolumesDropped == 0 else {
            throw .unsupported(path: path, reason: "a 4D volume (\(v.extraVolumesDropped + 1) volumes): give one 3D volume per case")
        }
        return v
    }

    static func sameGrid(_ a: NIfTIVolume, _ b: NIfTIVolume, _ pathA: String, _ pathB: String) throws(DataError) {
        guard a.dims == b.dims else {
            throw .invalid(path: pathB, reason: "its grid \(b.dims) is not the image's \(a.dims) (\(pathA))")
        }
        let sa = [a.spacing.x, a.spacing.y, a.spacing.z], sb = [b.spacing.x, b.spacing.y, b.spacing.z]
        guard zip(sa, sb).allSatisfy({ abs($0 - $1) <= 1e-3 * max(abs($0), 1) }) else {
            throw .invalid(path: pathB, reason: "its voxel size \(b.spacing) is not the image's \(a.spacing) (\(pathA))")
        }
    }

    /// The support cases, prepared; checks every label is present in some label map.
    public func supportCases(_ preprocessing: Preprocessing) throws(DataError) -> [SupportSet.Case] {
        var cases: [SupportSet.Case] = []
        var present = Set<UInt8>()
        for s in settings.support {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: s.images, isDirectory: &isFolder), isFolder.boolValue {
                guard let files = try? FileManager.default.contentsOfDirectory(atPath: s.images) else {
                    throw .unreadable(path: s.images, reason: "not a readable folder")
                }
                let pngs = files.filter { $0.lowercased().hasSuffix(".png") }.sorted()
                guard !pngs.isEmpty else { throw .emptyTask(task: s.images, reason: "no .png images in the folder") }
                for file in pngs {
                    let image = try PNG.read(path: s.images + "/" + file), mask = try PNG.read(path: s.labels + "/" + file)
                    guard image.width == mask.width, image.height == mask.height else {
                        throw .invalid(path: s.labels + "/" + file, reason: "mask is \(mask.width)x\(mask.height), its image \(image.width)x\(image.height)")
                    }
                    let binary = settings.binaryPNGMasks ? UInt8(settings.labels.first ?? 1) : nil
                    let labels = mask.samples.map { v -> UInt8 in
                        if let binary { return v > 0 ? binary : 0 }
                        return UInt8(min(v, 255))
                    }
                    present.formUnion(labels)
                    cases.append(.init(name: s.images + "/" + file,
                                       slices: preprocessing.slice(image: image.samples.map(Float.init), height: image.height, width: image.width,
                                                                   labels: labels)))
                }
            } else {
                let image = try Self.volume(s.images), labels = try Self.volume(s.labels)
                try Self.sameGrid(image, labels, s.images, s.labels)
                for v in labels.values {
                    guard v == v.rounded(), v >= 0, v <= 255 else {
                        throw .invalid(path: s.labels, reason: "label value \(v) is not an integer in 0...255")
                    }
                }
                let slices = preprocessing.slices(of: image, labels: labels)
                present.formUnion(slices.labels)
                cases.append(.init(name: s.images, slices: slices))
            }
        }
        for label in settings.labels where !present.contains(UInt8(label)) {
            throw .invalid(path: settings.support.map(\.labels).joined(separator: ", "),
                           reason: "label \(label) is in none of the support label maps")
        }
        return cases
    }

    /// Adapts (or loads the adapted parameters), segments every case, writes the outputs and
    /// `predictions.json`; `progress` gets one line per case and stage.
    public func run(progress: (String) -> Void) throws -> Report {
        let model = try TrainedModel.load(settings.checkpoint)
        let preprocessing = try Preprocessing(options: model.run.dataset.options)
        let inputs = try Self.cases(in: settings.input)
        // Every input is readable, 3D and finite before anything is adapted or written.
        for file in inputs { _ = try NIfTIVolume.readGeometry(path: settings.input + "/" + file) }
        let clock = MonotonicClock()
        var adapted: [Predictor.Adapted]
        if let path = settings.adapted {
            adapted = try AdaptedModels.read(path, model: model)
            progress("using the adapted parameters in \(path) (labels \(adapted.map { String($0.label) }.joined(separator: ", ")))")
        } else {
            let setting = settings.setting ?? .inner(steps: model.config.innerSteps, rateScale: 1)
            adapted = try Predictor.adapt(model, setting: setting, labels: settings.labels.map(UInt8.init), cases: try supportCases(preprocessing),
                                          shots: settings.shots, cut: settings.cut)
            let examples = settings.cut == .wholeSlices ? "the whole of \(settings.shots) slice(s)" : "\(settings.shots) example(s)"
            let shares = adapted.compactMap { a in a.supportShare.map { "label \(a.label) \(String(format: "%.1f", 100 * $0))%" } }
            progress("adapted to label(s) \(settings.labels.map(String.init).joined(separator: ", ")) from \(examples) each"
                     + " (the structure's share of their pixels: \(shares.joined(separator: ", "))) with \(setting) in \(ProgressLine.duration(clock.now))")
        }
        let adaptSeconds = clock.now
        let predictor = try Predictor(model: model, adapted: adapted, windowSize: settings.window, overlap: settings.overlap, threads: settings.threads)
        let fm = FileManager.default
        let staging = settings.output + "/.partial-\(getpid())"
        do { try fm.createDirectory(atPath: staging, withIntermediateDirectories: true) } catch {
            throw DataError.unreadable(path: settings.output, reason: "cannot create: \(error)")
        }
        var report = Report(checkpoint: settings.checkpoint, labels: adapted.map { Int($0.label) },
                            preprocessing: "\(preprocessing.options.resampling), \(preprocessing.options.axis.rawValue) slices",
                            window: predictor.window.size, overlap: settings.overlap, adaptSeconds: adaptSeconds, cases: [])
        var overlays: [String: String?] = [:]
        do {
            if let path = settings.saveAdapted { try AdaptedModels.write(adapted, model: model, to: path) }
            for (i, file) in inputs.enumerated() {
                let caseClock = MonotonicClock()
                let path = settings.input + "/" + file
                var volume = try Self.volume(path)
                // The volume's values become the prepared slices' (normalised in place); each
                // slice is resampled only as the windows reach it.
                let slices = preprocessing.slices(taking: &volume)
                let labels = predictor.predict(slices)
                let name = Self.outputName(file)
                try NIfTIVolume.writeMask(labels, like: volume, to: staging + "/" + name)
                var scores: [Int: VolumeScores]?
                var truthVolume: NIfTIVolume?
                if let reference = settings.reference {
                    let truth = try Self.volume(reference + "/" + name)
                    try Self.sameGrid(volume, truth, path, reference + "/" + name)
                    let spacing = (Double(volume.spacing.x), Double(volume.spacing.y), Double(volume.spacing.z))
                    scores = Dictionary(uniqueKeysWithValues: adapted.map { a in
                        (Int(a.label), VolumeScores(prediction: labels.map { $0 == a.label }, truth: truth.values.map { $0 == Float(a.label) },
                                                    dims: volume.dims, spacing: spacing))
                    })
                    truthVolume = truth
                }
                overlays[name] = try PredictReport.overlay(slices, labels: labels, truth: truthVolume, name: name, folder: staging)
                report.cases.append(.init(input: file, output: name, seconds: caseClock.now, scores: scores))
                let summary = scores.map { s in s.sorted { $0.key < $1.key }.map { String(format: "label %d Dice %.3f HD95 %@", $0.key, $0.value.dice, $0.value.hd95.map { String(format: "%.1f mm", $0) } ?? "-") }.joined(separator: ", ") } ?? ""
                progress("case \(i + 1)/\(inputs.count) \(file) -> \(name) in \(String(format: "%.1f", caseClock.now)) s" + (summary.isEmpty ? "" : "; " + summary))
            }
            for c in report.cases {
                let target = settings.output + "/" + c.output
                if fm.fileExists(atPath: target) { try fm.removeItem(atPath: target) }
                try fm.moveItem(atPath: staging + "/" + c.output, toPath: target)
            }
            if fm.fileExists(atPath: staging + "/overlays") {
                let target = settings.output + "/overlays"
                if fm.fileExists(atPath: target) { try fm.removeItem(atPath: target) }
                try fm.moveItem(atPath: staging + "/overlays", toPath: target)
            }
            try fm.removeItem(atPath: staging)
            try JSONFile.write(report, to: settings.output + "/predictions.json")
            try PredictReport.write(report, overlays: overlays.compactMapValues { $0 }, to: settings.output)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
        return report
    }
}

/// Adapted parameters saved for reuse: one set per label, with the model's run specification
/// (so its preprocessing travels with them).
public enum AdaptedModels {
    public static let format = "medmaml-adapted-1"

    public static func write(_ adapted: [Predictor.Adapted], model: TrainedModel, to path: String) throws {
        let layout = try MetaLayout(config: model.config).model
        var tensors: [(name: String, tensor: Safetensors.Tensor)] = []
        for a in adapted {
            for e in layout.entries {
                tensors.append(("label-\(a.label)/\(e.name)", Safetensors.Tensor(shape: e.shape, values: Array(a.parameters[e.range]))))
            }
        }
        try Safetensors.write(Safetensors.File(tensors: tensors, metadata: [
            "format": format, "labels": adapted.map { String($0.label) }.joined(separator: ","),
            "run_spec": String(decoding: try canonicalJSON(model.run), as: UTF8.self),
        ]), to: path)
    }

    /// The adapted parameters in `path`, which must have been adapted from `model`'s architecture.
    public static func read(_ path: String, model: TrainedModel) throws -> [Predictor.Adapted] {
        let file = try Safetensors.read(path: path)
        guard file.metadata["format"] == format, let labels = file.metadata["labels"] else {
            throw SafetensorsError.corrupt(path: path, reason: "not a file of adapted parameters (predict --save-adapted)")
        }
        let layout = try MetaLayout(config: model.config).model
        return try labels.split(separator: ",").map { text in
            guard let label = UInt8(text), label > 0 else { throw SafetensorsError.corrupt(path: path, reason: "bad label list \(labels.prefix(80))") }
            var values = [Float](repeating: 0, count: layout.count)
            for e in layout.entries {
                let t = try file.require("label-\(label)/\(e.name)", in: path)
                guard t.shape == e.shape, t.values.allSatisfy(\.isFinite) else {
                    throw SafetensorsError.shapeMismatch(path: path, name: "label-\(label)/\(e.name)", expected: e.shape, found: t.shape)
                }
                values.replaceSubrange(e.range, with: t.values)
            }
            return Predictor.Adapted(label: label, parameters: values)
        }
    }
}
