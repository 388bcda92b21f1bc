import Core

/// The built-in family of medical-like segmentation tasks: every structure kind in every
/// imaging style, procedurally generated, so the whole pipeline runs with no files.
///
/// A task is `synthetic/<structure>/<style>` (20 tasks). The default held-out split keeps the
/// whole `paired` structure and the whole `xray` style out of meta-training (8 meta-test
/// tasks, 12 meta-train). Every image is drawn independently with its own shape, size,
/// position, contrast and noise, deterministically from (seed, task, sample index, image).
/// Images are normalised per image to zero mean and unit variance, as is usual before a
/// segmentation network.
public struct SyntheticFamily: TaskSource {
    /// Bumped whenever generation changes, so workers with other images are refused.
    public static let generatorVersion = 1

    public let size: Int
    public let structures: [SyntheticStructure]
    public let styles: [SyntheticStyle]

    public init(size: Int = 64) {
        precondition(size >= 16 && size <= 1024, "synthetic images must be 16...1024 pixels")
        self.size = size
        structures = SyntheticStructure.allCases
        styles = SyntheticStyle.allCases
    }

    public var imageShape: FeatureShape { FeatureShape(channels: 1, height: size, width: size) }

    public var taskNames: [String] {
        structures.flatMap { s in styles.map { "synthetic/\(s.rawValue)/\($0.rawValue)" } }
    }

    public var identity: DatasetIdentity {
        DatasetIdentity(
            name: "synthetic",
            fingerprint: SHA256.hex(Array("synthetic v\(Self.generatorVersion) size \(size) \(taskNames.joined(separator: ","))".utf8)))
    }

    public var defaultSplit: TaskSplit { TaskSplit(testPatterns: ["synthetic/paired/*", "synthetic/*/xray"]) }

    /// Structure and style of task number `task`.
    public func kind(of task: Int) -> (SyntheticStructure, SyntheticStyle) {
        (structures[task / styles.count], styles[task % styles.count])
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < taskNames.count else { throw .badRequest("no synthetic task number \(task)") }
        guard support > 0, query >= 0, support + query <= 4096 else { throw .badRequest("bad shot counts \(support)+\(query)") }
        var images: [Float] = [], masks: [Float] = []
        images.reserveCapacity((support + query) * size * size)
        for i in 0..<(support + query) {
            let (image, mask) = render(task: task, index: index, seed: seed, image: i)
            images += image
            masks += mask
        }
        let split = support * size * size
        return TaskSample(shape: imageShape,
                          supportImages: Array(images[..<split]), supportMasks: Array(masks[..<split]),
                          queryImages: Array(images[split...]), queryMasks: Array(masks[split...]))
    }

    /// One image and mask; empty targets (a structure entirely outside the body) are redrawn.
    public func render(task: Int, index: UInt64, seed: UInt64, image: Int) -> (image: [Float], mask: [Float]) {
        let (structure, style) = kind(of: task)
        var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index, UInt64(image)])
        var scene = Scene(structure: structure, height: size, width: size, rng: &rng)
        for _ in 0..<8 where !scene.mask.contains(1) {
            scene = Scene(structure: structure, height: size, width: size, rng: &rng)
        }
        var pixels = style.render(scene, rng: &rng)
        normalise(&pixels)
        return (pixels, scene.mask)
    }

    private func normalise(_ x: inout [Float]) {
        var mean: Double = 0
        for v in x { mean += Double(v) }
        mean /= Double(x.count)
        var variance: Double = 0
        for v in x { variance += (Double(v) - mean) * (Double(v) - mean) }
        let std = max((variance / Double(x.count)).squareRoot(), 1e-6)
        for i in x.indices { x[i] = Float((Double(x[i]) - mean) / std) }
    }
}
