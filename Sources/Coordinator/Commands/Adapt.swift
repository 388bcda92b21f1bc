import ArgumentParser
import CommandOptions
import Core
import Datasets
import Evaluation
import Foundation
import Inference
import Training

/// `adapt`'s metrics.json: Dice over the scored images (PNG) or the volume's 3D scores.
struct AdaptMetrics: Codable {
    var dice: MeanCI?
    var perImage: [SegmentationScores]?
    var volume: VolumeScores?
}

struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adapt a trained model to a new task from a few labelled images and segment new images.",
        discussion: """
            PNG input: --support and --support-masks are folders of images and masks with the \
            same file names; --images is a folder; predicted masks are written as PNG (the \
            images' own size) under OUT/masks. NIfTI input: --support and --support-masks are a \
            volume and its label map; --images is a volume; the prediction is written as a uint8 \
            NIfTI with the input's header (OUT/<name>_pred.nii.gz). Images are preprocessed as the \
            model was trained (from its checkpoint); --axis and --ct-window may only repeat it. \
            With --masks (ground truth for --images), Dice, IoU, HD95, precision and recall (PNG) \
            or 3D Dice and HD95 in mm (NIfTI). For folders of volumes, use `predict`.
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "Labelled examples: a folder of PNGs or a NIfTI volume.") var support: String
    @Option(help: "Their masks: a folder of PNGs (same names) or a NIfTI label map.") var supportMasks: String
    @Option(help: "Images to segment: a folder of PNGs or a NIfTI volume.") var images: String
    @Option(help: "Ground truth for --images (optional), same kind.") var masks: String?
    @Option(help: "Output folder.") var out: String
    @OptionGroup var adaptation: AdaptationOptions
    @OptionGroup var numerics: NumericsOptions
    @Option(help: "Label value in NIfTI label maps (default: 1).") var label: Int = 1
    @Option(help: "Slice axis: only the model's own (its checkpoint says which).") var axis: SliceAxis?
    @Option(help: "CT window LEVEL,WIDTH: only the model's own.") var ctWindow: String?

    var isVolume: Bool { support.hasSuffix(".nii") || support.hasSuffix(".nii.gz") }

    /// Refuses flags that contradict the model's preprocessing, saying why.
    func checkPreprocessing(_ options: VolumeOptions) throws {
        if let axis, axis != options.axis {
            throw ValidationError("--axis \(axis.rawValue): the model was trained on \(options.axis.rawValue) slices, and adapting it on others would feed it what it never saw; leave --axis out")
        }
        if let ctWindow, try DataOptions.ctWindow(ctWindow) != options.normalisation {
            throw ValidationError("--ct-window \(ctWindow): the model was trained with \(options.normalisation); leave --ct-window out")
        }
    }

    func run() throws {
        let model = try TrainedModel.load(checkpoint)
        try checkPreprocessing(model.run.dataset.options)
        try applyNumerics(numerics.settings(defaults: model.run.numerics))
        guard (1...255).contains(label) else { throw ValidationError("--label takes 1...255") }
        try FileManager.default.createDirectory(atPath: out + "/overlays", withIntermediateDirectories: true)
        let preprocessing = try Preprocessing(options: model.run.dataset.options)
        let job = try PredictJob(settings: {
            var s = PredictJob.Settings(checkpoint: checkpoint, input: "", output: out)
            s.support = [.init(images: support, labels: supportMasks)]
            s.labels = [label]
            s.binaryPNGMasks = true
            return s
        }())
        let setting = adaptation.setting(for: model)
        let adapted = try Predictor.adapt(model, setting: setting, labels: [UInt8(label)], cases: try job.supportCases(preprocessing),
                                          shots: adaptation.shots)
        note("adapted from \(adaptation.shots) labelled image(s) at most with \(setting)")
        let predictor = try Predictor(model: model, adapted: adapted, threads: 2)
        let metrics = isVolume ? try segmentVolume(predictor, preprocessing) : try segmentPNGs(predictor, preprocessing)
        if let metrics {
            if let d = metrics.dice { print("dice \(d)") }
            if let v = metrics.volume { print(String(format: "dice %.4f", v.dice) + (v.hd95.map { String(format: "\nhd95_mm %.2f", $0) } ?? "")) }
            try JSONFile.write(metrics, to: out + "/metrics.json")
        }
        print("wrote \(out)")
    }

    // MARK: PNG

    func pngFiles(_ folder: String) throws -> [String] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else { throw ValidationError("\(folder) is not a readable folder") }
        let pngs = files.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !pngs.isEmpty else { throw ValidationError("no .png files in \(folder)") }
        return pngs
    }

    func segmentPNGs(_ predictor: Predictor, _ preprocessing: Preprocessing) throws -> AdaptMetrics? {
        try FileManager.default.createDirectory(atPath: out + "/masks", withIntermediateDirectories: true)
        var scores: [SegmentationScores] = []
        for file in try pngFiles(images) {
            let g = try PNG.read(path: images + "/" + file)
            let slices = preprocessing.slice(image: g.samples.map(Float.init), height: g.height, width: g.width)
            let predicted = predictor.predict(slices).map { Float($0 == UInt8(label) ? 1 : 0) }
            try PNG.write(path: out + "/masks/" + file, width: g.width, height: g.height, channels: 1, pixels: predicted.map { $0 > 0 ? 255 : 0 })
            var truth: [Float]?
            if let masks {
                let m = try PNG.read(path: masks + "/" + file)
                guard m.width == g.width, m.height == g.height else { throw ValidationError("\(masks)/\(file): mask is \(m.width)x\(m.height), its image \(g.width)x\(g.height)") }
                let t = m.samples.map { $0 > 0 ? Float(1) : 0 }
                truth = t
                scores.append(SegmentationScores(prediction: predicted, truth: t, height: g.height, width: g.width))
            }
            try Overlay.render(slices.image(0), height: slices.height, width: slices.width, prediction: predicted,
                               truth: truth, predictionHeight: g.height, predictionWidth: g.width).write(to: out + "/overlays/" + file)
        }
        return scores.isEmpty ? nil : AdaptMetrics(dice: MeanCI(scores.map(\.dice)), perImage: scores, volume: nil)
    }

    // MARK: NIfTI

    func segmentVolume(_ predictor: Predictor, _ preprocessing: Preprocessing) throws -> AdaptMetrics? {
        let volume = try NIfTIVolume.read(path: images)
        let slices = preprocessing.slices(of: volume)
        let labels = predictor.predict(slices)
        let base = URL(fileURLWithPath: images).lastPathComponent.replacingOccurrences(of: ".nii.gz", with: "").replacingOccurrences(of: ".nii", with: "")
        try NIfTIVolume.writeMask(labels.map { $0 == UInt8(label) ? 1 : 0 }, like: volume, to: out + "/\(base)_pred.nii.gz")
        // Overlays of up to 6 slices where something was predicted.
        let slicer = slices.slicer
        let predicted = (0..<slicer.count).filter { slicer.slice(labels, $0).contains(UInt8(label)) }
        var truthVolume: NIfTIVolume?
        if let masks {
            let t = try NIfTIVolume.read(path: masks)
            guard t.dims == volume.dims else { throw ValidationError("\(masks): size \(t.dims) differs from \(images) \(volume.dims)") }
            truthVolume = t
        }
        for s in predicted.enumerated().filter({ $0.offset % max(1, predicted.count / 6) == 0 }).map(\.element).prefix(6) {
            let truth = truthVolume.map { slicer.slice($0.values, s).map { $0 == Float(label) ? Float(1) : 0 } }
            try Overlay.render(slices.image(s), height: slices.height, width: slices.width,
                               prediction: slicer.slice(labels, s).map { $0 == UInt8(label) ? 1 : 0 }, truth: truth,
                               predictionHeight: slicer.height, predictionWidth: slicer.width)
                .write(to: out + String(format: "/overlays/slice-%04d.png", s))
        }
        guard let truth = truthVolume else { return nil }
        let spacing = (Double(volume.spacing.x), Double(volume.spacing.y), Double(volume.spacing.z))
        return AdaptMetrics(dice: nil, perImage: nil,
                            volume: VolumeScores(prediction: labels.map { $0 == UInt8(label) }, truth: truth.values.map { $0 == Float(label) },
                                                 dims: volume.dims, spacing: spacing))
    }
}
