import Core
import Datasets
import Evaluation
import Foundation
import Training

/// `adapt`: one label of one task, adapted from a few labelled images (a folder of PNGs or a
/// NIfTI volume) and applied to a folder of PNGs or a volume, with scores when the truth is
/// given. Images are preprocessed as the model was trained (`Preprocessing`); for folders of
/// volumes and several labels at once, `PredictJob`.
public struct AdaptJob {
    public struct Settings: Sendable {
        public var support: String
        public var supportMasks: String
        public var images: String
        /// Ground truth for `images` (optional), of the same kind.
        public var masks: String?
        public var output: String
        public var label = 1
        public var shots = 5
        public init(support: String, supportMasks: String, images: String, output: String) {
            self.support = support
            self.supportMasks = supportMasks
            self.images = images
            self.output = output
        }
    }

    /// metrics.json: Dice over the scored images (PNG) or the volume's 3D scores.
    public struct Metrics: Codable, Sendable {
        public var dice: MeanCI?
        public var perImage: [SegmentationScores]?
        public var volume: VolumeScores?
    }

    public let model: TrainedModel
    public let settings: Settings
    let preprocessing: Preprocessing
    var label: UInt8 { UInt8(settings.label) }

    public init(model: TrainedModel, settings: Settings) throws {
        guard (1...255).contains(settings.label) else { throw DataError.badRequest("--label takes 1...255, not \(settings.label)") }
        self.model = model
        self.settings = settings
        preprocessing = try Preprocessing(options: model.run.dataset.options)
    }

    public var isVolume: Bool { settings.support.hasSuffix(".nii") || settings.support.hasSuffix(".nii.gz") }

    /// Adapts with `setting`, segments, writes masks and overlays under the output folder and,
    /// with ground truth, metrics.json; returns the metrics.
    public func run(setting: AdaptationSetting, threads: Int = 2) throws -> Metrics? {
        try FileManager.default.createDirectory(atPath: settings.output + "/overlays", withIntermediateDirectories: true)
        var job = PredictJob.Settings(checkpoint: "", input: "", output: settings.output)
        job.support = [.init(images: settings.support, labels: settings.supportMasks)]
        job.labels = [settings.label]
        job.binaryPNGMasks = true
        let adapted = try Predictor.adapt(model, setting: setting, labels: [label], cases: try PredictJob(settings: job).supportCases(preprocessing),
                                          shots: settings.shots)
        let predictor = try Predictor(model: model, adapted: adapted, threads: threads)
        let metrics = isVolume ? try segmentVolume(predictor) : try segmentPNGs(predictor)
        if let metrics { try JSONFile.write(metrics, to: settings.output + "/metrics.json") }
        return metrics
    }

    // MARK: PNG

    static func pngFiles(_ folder: String) throws -> [String] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else { throw DataError.unreadable(path: folder, reason: "not a readable folder") }
        let pngs = files.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !pngs.isEmpty else { throw DataError.emptyTask(task: folder, reason: "the folder holds no .png file") }
        return pngs
    }

    func segmentPNGs(_ predictor: Predictor) throws -> Metrics? {
        let out = settings.output
        try FileManager.default.createDirectory(atPath: out + "/masks", withIntermediateDirectories: true)
        var scores: [SegmentationScores] = []
        for file in try Self.pngFiles(settings.images) {
            let g = try PNG.read(path: settings.images + "/" + file)
            let slices = preprocessing.slice(image: g.samples.map(Float.init), height: g.height, width: g.width)
            let predicted = predictor.predict(slices).map { Float($0 == label ? 1 : 0) }
            try PNG.write(path: out + "/masks/" + file, width: g.width, height: g.height, channels: 1, pixels: predicted.map { $0 > 0 ? 255 : 0 })
            var truth: [Float]?
            if let masks = settings.masks {
                let m = try PNG.read(path: masks + "/" + file)
                guard m.width == g.width, m.height == g.height else {
                    throw DataError.badRequest("\(masks)/\(file): the mask is \(m.width)x\(m.height), its image \(g.width)x\(g.height)")
                }
                let t = m.samples.map { $0 > 0 ? Float(1) : 0 }
                truth = t
                scores.append(SegmentationScores(prediction: predicted, truth: t, height: g.height, width: g.width))
            }
            try Overlay.render(slices.image(0), height: slices.height, width: slices.width, prediction: predicted,
                               truth: truth, predictionHeight: g.height, predictionWidth: g.width).write(to: out + "/overlays/" + file)
        }
        return scores.isEmpty ? nil : Metrics(dice: MeanCI(scores.map(\.dice)), perImage: scores, volume: nil)
    }

    // MARK: NIfTI

    func segmentVolume(_ predictor: Predictor) throws -> Metrics? {
        let images = settings.images, out = settings.output
        let volume = try NIfTIVolume.read(path: images)
        let slices = preprocessing.slices(of: volume)
        let labels = predictor.predict(slices)
        let name = URL(fileURLWithPath: PredictJob.outputName(images)).lastPathComponent.dropLast(".nii.gz".count)
        try NIfTIVolume.writeMask(labels.map { $0 == label ? 1 : 0 }, like: volume, to: out + "/\(name)_pred.nii.gz")
        var truthVolume: NIfTIVolume?
        if let masks = settings.masks {
            let t = try NIfTIVolume.read(path: masks)
            guard t.dims == volume.dims else { throw DataError.badRequest("\(masks): size \(t.dims) differs from \(images) \(volume.dims)") }
            truthVolume = t
        }
        // Overlays of up to 6 slices where something was predicted.
        let slicer = slices.slicer
        let predicted = (0..<slicer.count).filter { slicer.slice(labels, $0).contains(label) }
        for s in predicted.enumerated().filter({ $0.offset % max(1, predicted.count / 6) == 0 }).map(\.element).prefix(6) {
            let truth = truthVolume.map { slicer.slice($0.values, s).map { $0 == Float(settings.label) ? Float(1) : 0 } }
            try Overlay.render(slices.image(s), height: slices.height, width: slices.width,
                               prediction: slicer.slice(labels, s).map { $0 == label ? 1 : 0 }, truth: truth,
                               predictionHeight: slicer.height, predictionWidth: slicer.width)
                .write(to: out + String(format: "/overlays/slice-%04d.png", s))
        }
        guard let truth = truthVolume else { return nil }
        let spacing = (Double(volume.spacing.x), Double(volume.spacing.y), Double(volume.spacing.z))
        return Metrics(dice: nil, perImage: nil,
                       volume: VolumeScores(prediction: labels.map { $0 == label }, truth: truth.values.map { $0 == Float(settings.label) },
                                            dims: volume.dims, spacing: spacing))
    }
}
