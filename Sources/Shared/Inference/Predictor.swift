import Core
import Datasets
import Engine
import Evaluation
import Foundation
import MetaLearning
import Training

/// A trained model adapted to one structure per label value, segmenting whole volumes: each
/// prepared slice through sliding windows (`SlidingWindow`), each label's probabilities
/// resampled to the slice's native grid with bilinear interpolation, and every voxel given the
/// label of highest probability where that probability exceeds one half. Slices run on
/// `threads` threads a few at a time, so the memory beyond the input and output volumes does
/// not grow with their number.
public final class Predictor: @unchecked Sendable {
    /// The parameters one label's structure was adapted to.
    public struct Adapted: Sendable {
        public var label: UInt8
        public var parameters: [Float]
        /// The share of the support examples' pixels that are the structure (nil when loaded
        /// from a file of adapted parameters).
        public var supportShare: Double?
        public init(label: UInt8, parameters: [Float], supportShare: Double? = nil) {
            self.label = label
            self.parameters = parameters
            self.supportShare = supportShare
        }
    }

    public let model: TrainedModel
    public let preprocessing: Preprocessing
    public let window: SlidingWindow
    public let adapted: [Adapted]
    /// The model at the window's input size (the U-Net is fully convolutional).
    public let windowSpec: ModelSpec
    private let pool: ComputePool<Network<Float>, Int, [Float]>

    public init(model: TrainedModel, adapted: [Adapted], windowSize: Int? = nil, overlap: Double = 0.5, threads: Int = 1) throws {
        precondition(!adapted.isEmpty, "nothing adapted")
        self.model = model
        self.adapted = adapted
        let options = model.run.dataset.options
        preprocessing = try Preprocessing(options: options)
        let size = windowSize ?? model.config.model.input.height
        var spec = model.config.model
        spec.input = FeatureShape(channels: spec.input.channels, height: size, width: size)
        do { _ = try spec.validate() } catch {
            throw DataError.badRequest("the model cannot run on \(size)x\(size) windows (\(error)); pick a multiple of its poolings")
        }
        guard try spec.parameterShapes().map(\.shape) == model.config.model.parameterShapes().map(\.shape) else {
            throw DataError.badRequest("the model's parameters depend on its input size; it cannot run on \(size)x\(size) windows")
        }
        windowSpec = spec
        window = SlidingWindow(size: size, overlap: overlap)
        pool = try ComputePool(threads: threads) { _ in try Network<Float>(spec: spec, capacity: 8) }
    }

    /// Adapts the model to each of `labels` from `cases`, with `setting`, from `shots` slices
    /// each, cut into examples as `cut` says.
    public static func adapt(_ model: TrainedModel, setting: AdaptationSetting, labels: [UInt8], cases: [SupportSet.Case],
                             shots: Int, cut: SupportSet.Cut = .aroundStructure) throws -> [Adapted] {
        let size = model.config.model.input.height
        let modelCount = try MetaLayout(config: model.config).model.count
        let adaptation = setting.adaptation(meta: model.meta, config: model.config, modelCount: modelCount)
        // One scorer per example count (every label's, unless whole slices differ in size).
        var scorers: [Int: MetaTest.Scorer] = [:]
        return try labels.map { label in
            let sample = try SupportSet.examples(of: label, in: cases, shots: shots, size: size, cut: cut)
            let capacity = max(sample.supportCount, 1)
            let scorer = try scorers[capacity] ?? MetaTest.Scorer(model: model.config.model, capacity: capacity)
            scorers[capacity] = scorer
            let share = Double(sample.supportMasks.reduce(0, +)) / Double(max(sample.supportMasks.count, 1))
            return Adapted(label: label, parameters: try scorer.adapt(adaptation, sample: sample), supportShare: share)
        }
    }

    /// The label map of a prepared volume on its native grid (x fastest, the volume's dims).
    public func predict(_ slices: Preprocessing.Slices, progress: (Int, Int) -> Void = { _, _ in }) -> [UInt8] {
        let slicer = slices.slicer
        var out = [UInt8](repeating: 0, count: slicer.dims.x * slicer.dims.y * slicer.dims.z)
        let chunk = 4 * pool.threadCount
        var start = 0
        while start < slicer.count {
            let indices = Array(start..<min(start + chunk, slicer.count))
            let labelled = pool.run(indices) { network, s, _ in self.labels(of: slices, slice: s, network: network) }
            for (s, values) in zip(indices, labelled) { slicer.insert(values.map { UInt8($0) }, at: s, into: &out) }
            start += indices.count
            progress(start, slicer.count)
        }
        return out
    }

    /// One slice's label values on the native grid (as Float for the pool's output).
    private func labels(of slices: Preprocessing.Slices, slice s: Int, network: Network<Float>) -> [Float] {
        let h = slices.slicer.height, w = slices.slicer.width
        var best = [Float](repeating: 0.5, count: h * w), label = [Float](repeating: 0, count: h * w)
        let image = slices.image(s)
        for a in adapted {
            let p = window.probabilities(network, parameters: a.parameters, image: image, height: slices.height, width: slices.width)
            let native = Resample.bilinear(p, height: slices.height, width: slices.width, outHeight: h, outWidth: w)
            for i in native.indices where native[i] > best[i] {
                best[i] = native[i]
                label[i] = Float(a.label)
            }
        }
        return label
    }
}
