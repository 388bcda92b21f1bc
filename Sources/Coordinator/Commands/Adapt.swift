import ArgumentParser
import Core
import Datasets
import Engine
import Evaluation
import Foundation
import Logging
import MetaLearning
import Training

/// `adapt`'s metrics.json: Dice over the scored images and each image's scores.
struct AdaptMetrics: Codable {
    var dice: MeanCI
    var perImage: [SegmentationScores]
}

struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Adapt a trained model to a new task from a few labelled images and segment new images.",
        discussion: """
            PNG input: --support and --support-masks are folders of images and masks with the \
            same file names; --images is a folder; predicted masks are written as PNG (the \
            images' own size) under OUT/masks. NIfTI input: --support and --support-masks are a \
            volume and its label map (slices containing the label serve as the labelled \
            examples); --images is a volume; the prediction is written as a uint8 NIfTI with the \
            input's header (OUT/<name>_pred.nii.gz). Overlays go to OUT/overlays. With --masks \
            (ground truth for --images) Dice, IoU, HD95, precision and recall are reported.
            """)

    @Option(help: "A checkpoint or final.safetensors.") var checkpoint: String
    @Option(help: "Labelled examples: a folder of PNGs or a NIfTI volume.") var support: String
    @Option(help: "Their masks: a folder of PNGs (same names) or a NIfTI label map.") var supportMasks: String
    @Option(help: "Images to segment: a folder of PNGs or a NIfTI volume.") var images: String
    @Option(help: "Ground truth for --images (optional), same kind.") var masks: String?
    @Option(help: "Output folder.") var out: String
    @OptionGroup var adaptation: AdaptationOptions
    @Option(help: "Label value in NIfTI label maps (default: any non-zero label).") var label: Int?
    @Option(help: "Slice axis for NIfTI volumes.") var axis: SliceAxis = .axial
    @Option(help: "CT window LEVEL,WIDTH instead of percentile clipping and z-score.") var ctWindow: String?

    var shots: Int { adaptation.shots }

    var isVolume: Bool { support.hasSuffix(".nii") || support.hasSuffix(".nii.gz") }

    func normalisation() throws -> IntensityNormalisation {
        guard let window = ctWindow else { return .standard }
        return try DataOptions.ctWindow(window)
    }

    func run() throws {
        let model = try TrainedModel.load(checkpoint)
        let size = model.config.model.input.height
        try FileManager.default.createDirectory(atPath: out + "/overlays", withIntermediateDirectories: true)
        let norm = try normalisation()

        // Labelled examples, preprocessed as in training.
        let (supportImages, supportMasks) = isVolume ? try volumeExamples(size: size, norm: norm) : try pngExamples(size: size, norm: norm)
        let k = supportImages.count / (size * size)
        guard k > 0 else { throw ValidationError("no labelled example contains the structure") }
        let config = model.config
        let scorer = try MetaTest.Scorer(model: config.model, capacity: 8)
        let support = TaskSample(shape: config.model.input, supportImages: supportImages, supportMasks: supportMasks,
                                 queryImages: [], queryMasks: [])
        let adapted = try scorer.adapt(try adaptation.adaptation(model), sample: support)
        FileHandle.standardError.write(Data("adapted from \(k) labelled image(s) with \(adaptation.setting(for: model))\n".utf8))
        var scores: [SegmentationScores] = []
        if isVolume {
            scores = try segmentVolume(scorer: scorer, parameters: adapted, size: size, norm: norm)
        } else {
            scores = try segmentPNGs(scorer: scorer, parameters: adapted, size: size, norm: norm)
        }
        if !scores.isEmpty {
            let dice = MeanCI(scores.map(\.dice)), iou = MeanCI(scores.map(\.iou))
            let hd = MeanCI(scores.compactMap(\.hd95))
            print("images \(scores.count)")
            print("dice \(dice)")
            print("iou \(iou)")
            print("hd95 \(hd)")
            print("precision \(MeanCI(scores.map(\.precision)))")
            print("recall \(MeanCI(scores.map(\.recall)))")
            try JSONFile.write(AdaptMetrics(dice: dice, perImage: scores), to: out + "/metrics.json")
        }
        print("wrote \(out)")
    }

    // MARK: PNG

    func pngFiles(_ folder: String) throws -> [String] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw ValidationError("\(folder) is not a readable folder")
        }
        let pngs = files.filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !pngs.isEmpty else { throw ValidationError("no .png files in \(folder)") }
        return pngs
    }

    func loadPNG(_ path: String, size: Int, norm: IntensityNormalisation) throws -> (PNG.Gray, [Float]) {
        let g = try PNG.read(path: path)
        var v = Resample.bilinear(g.samples.map(Float.init), height: g.height, width: g.width, outHeight: size, outWidth: size)
        norm.apply(&v)
        return (g, v)
    }

    func loadMaskPNG(_ path: String, size: Int, like image: PNG.Gray?) throws -> (PNG.Gray, [Float]) {
        let g = try PNG.read(path: path)
        if let image, image.width != g.width || image.height != g.height {
            throw ValidationError("\(path): mask is \(g.width)x\(g.height), its image \(image.width)x\(image.height)")
        }
        let binary = g.samples.map { $0 > 0 ? Float(1) : 0 }
        return (g, Resample.nearest(binary, height: g.height, width: g.width, outHeight: size, outWidth: size))
    }

    func pngExamples(size: Int, norm: IntensityNormalisation) throws -> ([Float], [Float]) {
        var images: [Float] = [], masks: [Float] = []
        for file in try pngFiles(support).prefix(shots) {
            let (g, v) = try loadPNG(support + "/" + file, size: size, norm: norm)
            let maskPath = supportMasks + "/" + file
            guard FileManager.default.fileExists(atPath: maskPath) else { throw ValidationError("missing mask \(maskPath)") }
            images += v
            masks += try loadMaskPNG(maskPath, size: size, like: g).1
        }
        return (images, masks)
    }

    func segmentPNGs(scorer: MetaTest.Scorer, parameters: [Float], size: Int, norm: IntensityNormalisation) throws -> [SegmentationScores] {
        try FileManager.default.createDirectory(atPath: out + "/masks", withIntermediateDirectories: true)
        var scores: [SegmentationScores] = []
        for file in try pngFiles(images) {
            let (g, v) = try loadPNG(images + "/" + file, size: size, norm: norm)
            let small = scorer.predict(parameters: parameters, images: v)
            let full = Resample.nearest(small, height: size, width: size, outHeight: g.height, outWidth: g.width)
            try PNG.write(path: out + "/masks/" + file, width: g.width, height: g.height, channels: 1, pixels: full.map { $0 > 0.5 ? 255 : 0 })
            var truth: [Float]?
            if let masks {
                let (_, t) = try loadMaskPNG(masks + "/" + file, size: size, like: g)
                truth = t
                scores.append(SegmentationScores(prediction: small, truth: t, height: size, width: size))
            }
            try overlay(v, prediction: small, truth: truth, size: size).write(to: out + "/overlays/" + file)
        }
        return scores
    }

    // MARK: NIfTI

    func binaryLabels(_ v: NIfTIVolume) -> [UInt8] {
        v.values.map { value in
            if let label { return value == Float(label) ? 1 : 0 }
            return value > 0.5 ? 1 : 0
        }
    }

    func volumeExamples(size: Int, norm: IntensityNormalisation) throws -> ([Float], [Float]) {
        let image = try NIfTIVolume.read(path: support), labels = try NIfTIVolume.read(path: supportMasks)
        guard image.dims == labels.dims else { throw ValidationError("\(supportMasks): size \(labels.dims) differs from \(support) \(image.dims)") }
        var values = image.values
        norm.apply(&values)
        let slicer = VolumeSlicer(dims: image.dims, axis: axis)
        let (slices, labelSlices) = slicer.resizedSlices(values, labels: binaryLabels(labels), size: size)
        let plane = size * size
        let labelled = (0..<slicer.count).filter { s in labelSlices[(s * plane)..<((s + 1) * plane)].contains(1) }
        // Spread the chosen slices evenly over the structure's extent.
        let chosen = labelled.count <= shots ? labelled : (0..<shots).map { labelled[$0 * (labelled.count - 1) / max(shots - 1, 1)] }
        var imgs: [Float] = [], msks: [Float] = []
        for s in chosen {
            imgs += slices[(s * plane)..<((s + 1) * plane)]
            msks += labelSlices[(s * plane)..<((s + 1) * plane)].map(Float.init)
        }
        return (imgs, msks)
    }

    func segmentVolume(scorer: MetaTest.Scorer, parameters: [Float], size: Int, norm: IntensityNormalisation) throws -> [SegmentationScores] {
        let volume = try NIfTIVolume.read(path: images)
        var values = volume.values
        norm.apply(&values)
        let slicer = VolumeSlicer(dims: volume.dims, axis: axis)
        let (slices, _) = slicer.resizedSlices(values, labels: [], size: size)
        let plane = size * size
        let small = scorer.predict(parameters: parameters, images: slices)
        var labels = [UInt8](repeating: 0, count: volume.values.count)
        for s in 0..<slicer.count {
            let full = Resample.nearest(Array(small[(s * plane)..<((s + 1) * plane)]), height: size, width: size,
                                        outHeight: slicer.height, outWidth: slicer.width)
            slicer.insert(full.map { $0 > 0.5 ? UInt8(1) : 0 }, at: s, into: &labels)
        }
        let base = URL(fileURLWithPath: images).lastPathComponent.replacingOccurrences(of: ".nii.gz", with: "").replacingOccurrences(of: ".nii", with: "")
        try NIfTIVolume.writeMask(labels, like: volume, to: out + "/\(base)_pred.nii.gz")
        var scores: [SegmentationScores] = []
        var truthSlices: [UInt8] = []
        if let masks {
            let truth = try NIfTIVolume.read(path: masks)
            guard truth.dims == volume.dims else { throw ValidationError("\(masks): size \(truth.dims) differs from \(images) \(volume.dims)") }
            let binary = binaryLabels(truth)
            truthSlices = (0..<slicer.count).flatMap { slicer.slice(binary, $0) }
            // Scored per slice that holds the structure or a prediction, at the volume's own resolution and voxel size.
            let spacing: (Double, Double) = {
                let sp = [Double(volume.spacing.x), Double(volume.spacing.y), Double(volume.spacing.z)]
                switch axis { case .axial: return (sp[1], sp[0]); case .coronal: return (sp[2], sp[0]); case .sagittal: return (sp[2], sp[1]) }
            }()
            let slicePlane = slicer.height * slicer.width
            for s in 0..<slicer.count {
                let t = truthSlices[(s * slicePlane)..<((s + 1) * slicePlane)].map(Float.init)
                let p = slicer.slice(labels, s).map(Float.init)
                guard t.contains(1) || p.contains(1) else { continue }
                scores.append(SegmentationScores(prediction: p, truth: t, height: slicer.height, width: slicer.width, spacing: spacing))
            }
        }
        // Overlays of up to 6 slices where something was predicted.
        let predicted = (0..<slicer.count).filter { s in small[(s * plane)..<((s + 1) * plane)].contains(1) }
        for s in predicted.enumerated().filter({ $0.offset % max(1, predicted.count / 6) == 0 }).map(\.element).prefix(6) {
            let truth: [Float]? = truthSlices.isEmpty ? nil : Resample.nearest(
                Array(truthSlices[(s * slicer.height * slicer.width)..<((s + 1) * slicer.height * slicer.width)]),
                height: slicer.height, width: slicer.width, outHeight: size, outWidth: size).map(Float.init)
            try overlay(Array(slices[(s * plane)..<((s + 1) * plane)]), prediction: Array(small[(s * plane)..<((s + 1) * plane)]),
                        truth: truth, size: size).write(to: out + String(format: "/overlays/slice-%04d.png", s))
        }
        return scores
    }

    func overlay(_ image: [Float], prediction: [Float], truth: [Float]?, size: Int) -> Canvas {
        let zoom = max(1, 256 / size)
        var c = Canvas(width: size * zoom, height: size * zoom)
        c.drawImage(image, width: size, height: size, at: 0, 0, zoom: zoom)
        if let truth { c.drawOutline(truth, width: size, height: size, at: 0, 0, zoom: zoom, color: (60, 230, 90)) }
        c.drawOutline(prediction, width: size, height: size, at: 0, 0, zoom: zoom, color: (250, 220, 40))
        return c
    }
}
