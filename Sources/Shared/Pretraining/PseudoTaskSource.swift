import Core
import Datasets
import RealModule

/// Self-supervised segmentation tasks from unlabelled images, after SSL-ALPNet (Ouyang et
/// al., ECCV 2020): a pseudo-task is "segment this superpixel region (or a merged group of
/// neighbouring ones)", with support and query built from differently augmented views of the
/// same image (geometric: rotation, scale, shift, flip; intensity: gamma, contrast,
/// brightness, noise). One task per image group; a sample is a pure function of
/// (task, index, seed), so workers generate pseudo-tasks from descriptions like real tasks.
public struct PseudoTaskSource: TaskSource {
    public let images: UnlabelledImages
    public let options: PseudoTaskOptions

    public init(images: UnlabelledImages, options: PseudoTaskOptions = PseudoTaskOptions()) {
        self.images = images
        self.options = options
    }

    public var identity: DatasetIdentity { images.pretextIdentity("pseudo", options: options) }
    public var imageShape: FeatureShape { images.imageShape }
    public var taskNames: [String] { images.groups.map { "pseudo/" + $0 } }
    public var defaultSplit: TaskSplit { TaskSplit(testPatterns: []) }

    /// The pseudo-mask for one image: a random suitable superpixel, grown by merging up to
    /// `maximumMerged` random neighbours while the area stays in range. Nil if none fits.
    public func pseudoMask(_ image: [Float], rng: inout RandomStream) -> [Float]? {
        let shape = images.imageShape
        let sp = Superpixels(image: image, height: shape.height, width: shape.width, target: options.superpixels,
                             compactness: options.compactness)
        let areas = sp.areas, total = Double(image.count)
        // Background (air, outside the field of view) is the darkest intensities: skip superpixels there.
        let sorted = image.sorted()
        let floor = sorted[image.count / 20] + 0.1 * (sorted[image.count - 1 - image.count / 100] - sorted[image.count / 20])
        var means = [Float](repeating: 0, count: sp.count)
        for (i, l) in sp.labels.enumerated() { means[Int(l)] += image[i] }
        let candidates = (0..<sp.count).filter {
            Double(areas[$0]) / total >= options.minimumArea / 2 && Double(areas[$0]) / total <= options.maximumArea
                && means[$0] / Float(areas[$0]) > floor
        }
        guard !candidates.isEmpty else { return nil }
        var chosen: Set<Int> = [candidates[rng.below(candidates.count)]]
        let adjacency = sp.adjacency
        var area = areas[chosen.first!]
        for _ in 0..<rng.below(options.maximumMerged + 1) {
            let frontier = Set(chosen.flatMap { adjacency[$0] }).subtracting(chosen).sorted()
                .filter { means[$0] / Float(areas[$0]) > floor && Double(area + areas[$0]) / total <= options.maximumArea }
            guard !frontier.isEmpty else { break }
            let pick = frontier[rng.below(frontier.count)]
            chosen.insert(pick)
            area += areas[pick]
        }
        guard Double(area) / total >= options.minimumArea else { return nil }
        return sp.labels.map { chosen.contains(Int($0)) ? 1 : 0 }
    }

    /// One augmented view: geometric transform of image and mask together, then intensity.
    static func view(_ image: [Float], _ mask: [Float], size: Int, rng: inout RandomStream) -> ([Float], [Float]) {
        let angle = rng.uniform(-15, 15) * .pi / 180, scale = rng.uniform(0.85, 1.15)
        let ty = rng.uniform(-0.08, 0.08) * Float(size), tx = rng.uniform(-0.08, 0.08) * Float(size)
        let warp = Resample.Warp(angle: angle, scale: scale, shiftX: tx, shiftY: ty, flip: rng.chance(0.5))
        var outImage = Resample.warp(image, height: size, width: size, warp, nearest: false, fill: image.min() ?? 0)
        let outMask = Resample.warp(mask, height: size, width: size, warp, nearest: true, fill: 0)
        // Intensity: gamma on the min-max normalised image, contrast, brightness, noise; then z-score.
        let lo = outImage.min() ?? 0, hi = max(outImage.max() ?? 1, lo + 1e-6)
        let gamma = Float.exp(rng.uniform(-0.4, 0.4)), contrast = rng.uniform(0.8, 1.2), brightness = rng.uniform(-0.1, 0.1)
        let noise = rng.uniform(0, 0.04)
        for i in outImage.indices {
            let t = Float.pow((outImage[i] - lo) / (hi - lo), gamma)
            outImage[i] = t * contrast + brightness + noise * Float(rng.normal())
        }
        IntensityNormalisation.zscore(lowPercentile: 0, highPercentile: 100).apply(&outImage)
        return (outImage, outMask)
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < images.groups.count else { throw .badRequest("no pseudo-task \(task)") }
        guard support > 0, query >= 0 else { throw .badRequest("bad shot counts \(support)+\(query)") }
        let shape = images.imageShape, size = shape.height
        var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index, 0x55])
        let count = images.imageCount(group: task)
        guard count > 0 else { throw .emptyTask(task: taskNames[task], reason: "no images") }
        for _ in 0..<20 {
            let image = try images.image(group: task, index: rng.below(count))
            guard let mask = pseudoMask(image, rng: &rng) else { continue }
            var imgs: [Float] = [], msks: [Float] = []
            var ok = true
            for _ in 0..<(support + query) {
                var (vi, vm) = Self.view(image, mask, size: size, rng: &rng)
                // A view that pushed the region out of the frame is redrawn once, then given up.
                if !vm.contains(1) { (vi, vm) = Self.view(image, mask, size: size, rng: &rng) }
                if !vm.contains(1) { ok = false; break }
                imgs += vi
                msks += vm
            }
            guard ok else { continue }
            let split = support * size * size
            return TaskSample(shape: shape, supportImages: Array(imgs[..<split]), supportMasks: Array(msks[..<split]),
                              queryImages: Array(imgs[split...]), queryMasks: Array(msks[split...]))
        }
        throw .emptyTask(task: taskNames[task], reason: "no image in 20 tries had a suitable superpixel")
    }
}
