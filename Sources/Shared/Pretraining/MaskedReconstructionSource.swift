import Core
import Datasets

/// A second pretext on the same unlabelled images as the superpixel pseudo-tasks: masked-image
/// reconstruction with denoising (after masked autoencoders, He et al., CVPR 2022, and
/// denoising autoencoders, Vincent et al., ICML 2008). The input is an augmented view of an
/// image (the pseudo-tasks' augmentation) with random square patches blanked to the mean and
/// Gaussian noise added; the target is the clean view's intensities scaled to [0, 1].
///
/// The target stands where a mask stands, so the U-Net learns it with its own segmentation
/// loss, unchanged: BCE on a soft target is smallest where the prediction equals it, and the
/// soft-Dice term adds a pull towards the bright structures. Its samples are training data
/// for plain supervised training (`JointTraining`), not few-shot tasks: "support" and "query"
/// are just images, and the masks are not binary, so they are not `TaskSample.validate`'s.
/// A sample is a pure function of (group, index, seed).
public struct MaskedReconstructionSource: TaskSource {
    public struct Options: Codable, Hashable, Sendable {
        /// Side of a blanked square, as a fraction of the image side (4 pixels at 32x32).
        public var patchFraction = 0.125
        /// The share of the squares of the patch grid blanked in each view.
        public var maskedFraction = 0.5
        /// Standard deviation of the Gaussian noise added to the input (z-score units).
        public var noise: Float = 0.1
        public init() {}
    }

    public let images: UnlabelledImages
    public let options: Options

    public init(images: UnlabelledImages, options: Options = Options()) throws(DataError) {
        guard images.imageShape.channels == 1, images.imageShape.height == images.imageShape.width else {
            throw .badRequest("masked reconstruction needs square single-channel images, not \(images.imageShape)")
        }
        guard options.patchFraction > 0, options.patchFraction <= 1, (0...1).contains(options.maskedFraction),
              options.noise.isFinite, options.noise >= 0 else {
            throw .badRequest("masked reconstruction options out of range: \(options)")
        }
        self.images = images
        self.options = options
    }

    public var identity: DatasetIdentity { images.pretextIdentity("masked", options: options) }
    public var imageShape: FeatureShape { images.imageShape }
    public var taskNames: [String] { images.groups.map { "masked/" + $0 } }
    public var defaultSplit: TaskSplit { TaskSplit(testPatterns: []) }

    /// The side of a blanked square in pixels.
    public var patch: Int { max(Int((options.patchFraction * Double(imageShape.height)).rounded()), 1) }

    /// One pair: the corrupted input and its target, from a clean view `view` (z-scored).
    public func corrupt(_ view: [Float], rng: inout RandomStream) -> (input: [Float], target: [Float]) {
        let size = imageShape.height, side = patch
        let cells = (size + side - 1) / side
        var order = Array(0..<(cells * cells))
        rng.shuffle(&order)
        var input = view
        for cell in order.prefix(Int((options.maskedFraction * Double(order.count)).rounded())) {
            let y0 = (cell / cells) * side, x0 = (cell % cells) * side
            for y in y0..<min(y0 + side, size) { for x in x0..<min(x0 + side, size) { input[y * size + x] = 0 } }
        }
        for i in input.indices { input[i] += options.noise * Float(rng.normal()) }
        let lo = view.min() ?? 0, span = max((view.max() ?? 1) - lo, 1e-6)
        return (input, view.map { ($0 - lo) / span })
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < images.groups.count else { throw .badRequest("no reconstruction group \(task)") }
        guard support > 0, query >= 0 else { throw .badRequest("bad image counts \(support)+\(query)") }
        let count = images.imageCount(group: task)
        guard count > 0 else { throw .emptyTask(task: taskNames[task], reason: "no images") }
        let size = imageShape.height
        var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index, 0x4D41])
        var inputs: [Float] = [], targets: [Float] = []
        inputs.reserveCapacity((support + query) * size * size)
        targets.reserveCapacity((support + query) * size * size)
        for _ in 0..<(support + query) {
            let image = try images.image(group: task, index: rng.below(count))
            let (view, _) = PseudoTaskSource.view(image, [Float](repeating: 0, count: image.count), size: size, rng: &rng)
            let (input, target) = corrupt(view, rng: &rng)
            inputs += input
            targets += target
        }
        let split = support * size * size
        return TaskSample(shape: imageShape, supportImages: Array(inputs[..<split]), supportMasks: Array(targets[..<split]),
                          queryImages: Array(inputs[split...]), queryMasks: Array(targets[split...]))
    }
}
