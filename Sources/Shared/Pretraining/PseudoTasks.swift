import Foundation
import Logging
import RealModule

/// Images without labels, in groups (an imaging style, a volume, a folder).
public protocol UnlabelledImages: Sendable {
    var identity: DatasetIdentity { get }
    var imageShape: FeatureShape { get }
    var groups: [String] { get }
    /// Images in a group (generated sources may be practically unbounded).
    func imageCount(group: Int) -> Int
    /// Image `index` of `group`, preprocessed as for training (resized, normalised).
    func image(group: Int, index: Int) throws(DataError) -> [Float]
}

/// The synthetic family's images without their masks, grouped by imaging style.
public struct SyntheticUnlabelled: UnlabelledImages {
    public let family: SyntheticFamily
    public init(size: Int) { family = SyntheticFamily(size: size) }
    public var identity: DatasetIdentity { DatasetIdentity(name: "synthetic-unlabelled", fingerprint: family.identity.fingerprint) }
    public var imageShape: FeatureShape { family.imageShape }
    public var groups: [String] { family.styles.map { "synthetic/\($0.rawValue)" } }
    public func imageCount(group: Int) -> Int { 1 << 40 }
    public func image(group: Int, index: Int) throws(DataError) -> [Float] {
        guard family.styles.indices.contains(group) else { throw .badRequest("no group \(group)") }
        // Any structure of the style: the task is picked by the index.
        let task = (index % family.structures.count) * family.styles.count + group
        return family.render(task: task, index: UInt64(index), seed: 0x5E1F, image: 0).image
    }
}

/// Unlabelled images from files: a Decathlon/nnU-Net folder's `imagesTs/` (or every image
/// with `includeTraining`), cut into slices, or a folder of PNG task folders (`<task>/images`,
/// masks ignored). One group per volume or per PNG task folder.
public final class FileUnlabelled: UnlabelledImages, @unchecked Sendable {
    public let identity: DatasetIdentity
    public let imageShape: FeatureShape
    public let groups: [String]
    let images: [[[Float]]]

    public init(root: String, options: VolumeOptions, includeTraining: Bool, logger: Logger) throws(DataError) {
        let fm = FileManager.default
        var groups: [String] = [], images: [[[Float]]] = []
        var digest = [UInt8](canonicalJSON(options)) + Array("unlabelled \(includeTraining)".utf8)
        let size = options.size
        if fm.fileExists(atPath: root + "/dataset.json") {
            var files: [String] = []
            for folder in includeTraining ? ["imagesTs", "imagesTr"] : ["imagesTs"] {
                let list = (try? fm.contentsOfDirectory(atPath: root + "/" + folder)) ?? []
                files += list.filter { ($0.hasSuffix(".nii") || $0.hasSuffix(".nii.gz")) && !$0.hasPrefix(".") }.sorted().map { root + "/\(folder)/" + $0 }
            }
            for path in files {
                do throws(DataError) {
                    let v = try NIfTIVolume.read(path: path)
                    var values = v.values
                    options.normalisation.apply(&values)
                    let slicer = VolumeSlicer(dims: v.dims, axis: options.axis)
                    let (flat, _) = slicer.resizedSlices(values, labels: [], size: size)
                    images.append((0..<slicer.count).map { Array(flat[($0 * size * size)..<(($0 + 1) * size * size)]) })
                    groups.append(URL(fileURLWithPath: path).lastPathComponent)
                    digest += Array(v.fileDigest.utf8)
                } catch {
                    guard options.skipBad else { throw error }
                    logger.warning("skipping an unreadable volume: \(error)")
                }
            }
        } else {
            let tasks = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            for task in tasks {
                let dir = "\(root)/\(task)/images"
                guard let files = try? fm.contentsOfDirectory(atPath: dir) else { continue }
                var group: [[Float]] = []
                for f in files.sorted() where f.lowercased().hasSuffix(".png") {
                    do throws(DataError) {
                        let (g, bytes) = try PNGFolderDataset.load(dir + "/" + f)
                        var v = Resample.bilinear(g.samples.map(Float.init), height: g.height, width: g.width, outHeight: size, outWidth: size)
                        options.normalisation.apply(&v)
                        group.append(v)
                        digest += Array(SHA256.hex(bytes).utf8)
                    } catch {
                        guard options.skipBad else { throw error }
                        logger.warning("skipping an unreadable image: \(error)")
                    }
                }
                if !group.isEmpty { groups.append(task); images.append(group) }
            }
        }
        guard !groups.isEmpty else {
            throw .emptyTask(task: root, reason: includeTraining || !fm.fileExists(atPath: root + "/dataset.json")
                             ? "no unlabelled images found" : "no imagesTs/ volumes (use --include-training-images)")
        }
        self.groups = groups
        self.images = images
        imageShape = FeatureShape(channels: 1, height: size, width: size)
        identity = DatasetIdentity(name: URL(fileURLWithPath: root).lastPathComponent + "-unlabelled", fingerprint: SHA256.hex(digest))
    }

    public func imageCount(group: Int) -> Int { images[group].count }
    public func image(group: Int, index: Int) throws(DataError) -> [Float] {
        guard images.indices.contains(group), images[group].indices.contains(index) else { throw .badRequest("no image \(index) in group \(group)") }
        return images[group][index]
    }
}

/// Settings of the self-supervised pseudo-tasks.
public struct PseudoTaskOptions: Codable, Hashable, Sendable {
    /// Approximate superpixels per image.
    public var superpixels = 48
    public var compactness: Float = 0.6
    /// Neighbouring superpixels merged into the target (0 up to this many, at random).
    public var maximumMerged = 2
    /// The target covers between these fractions of the image.
    public var minimumArea = 0.01
    public var maximumArea = 0.25
    public init() {}
}

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

    public var identity: DatasetIdentity {
        DatasetIdentity(name: "pseudo:" + images.identity.name,
                        fingerprint: SHA256.hex(Array((images.identity.fingerprint + String(decoding: canonicalJSON(options), as: UTF8.self)).utf8)))
    }
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
        let flip = rng.chance(0.5)
        let c = Float.cos(angle) / scale, s = Float.sin(angle) / scale, mid = Float(size - 1) / 2
        let fill = image.min() ?? 0
        var outImage = [Float](repeating: fill, count: size * size), outMask = [Float](repeating: 0, count: size * size)
        for y in 0..<size {
            for x in 0..<size {
                let xo = (flip ? Float(size - 1 - x) : Float(x)) - mid - tx, yo = Float(y) - mid - ty
                let sx = c * xo + s * yo + mid, sy = -s * xo + c * yo + mid
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                if x0 >= 0, y0 >= 0, x0 + 1 < size, y0 + 1 < size {
                    let fx = sx - Float(x0), fy = sy - Float(y0)
                    let a = image[y0 * size + x0], b = image[y0 * size + x0 + 1]
                    let d = image[(y0 + 1) * size + x0], e = image[(y0 + 1) * size + x0 + 1]
                    outImage[y * size + x] = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy
                }
                let nx = Int(sx.rounded()), ny = Int(sy.rounded())
                if nx >= 0, ny >= 0, nx < size, ny < size { outMask[y * size + x] = mask[ny * size + nx] }
            }
        }
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
