import Core

/// The built-in families of medical-like segmentation tasks: every structure kind in every
/// imaging style, procedurally generated, so the whole pipeline runs with no files.
///
/// - `synthetic` (one structure per image): a task is `synthetic/<structure>/<style>` (20
///   tasks), each image showing its task's structure among context organs. Default split:
///   the whole `paired` structure and the whole `xray` style are held out for meta-testing
///   (8 tasks); `ring` in the other styles is the meta-validation set (3 tasks); the other 9
///   tasks are meta-train.
/// - `synthetic-multi` (every structure in every image): a task is
///   `synthetic-multi/<structure>/<style>`, and all tasks of a style draw the *same* images
///   for a sample, each labelling a different structure: the tasks conflict, as the organ
///   tasks of one abdominal CT do. Default split: `paired` is the meta-test structure and
///   `ring` the meta-validation structure, in every style; neither is ever a target in
///   meta-training, which sees `organ`, `vessel` and `lesion` (12 tasks).
///
/// Every image is drawn with its own shapes, sizes, positions, contrast and noise,
/// deterministically from (seed, task or style, sample index, image), and normalised to zero
/// mean and unit variance, as is usual before a segmentation network.
public struct SyntheticFamily: TaskSource {
    /// Bumped whenever generation changes, so workers with other images are refused.
    public static let generatorVersion = 1

    /// Whether an image holds one structure or all of them.
    public enum Variant: String, Sendable, CaseIterable {
        case singleStructure = "synthetic"
        case multiStructure = "synthetic-multi"
    }

    public let size: Int
    public let variant: Variant
    public let structures: [SyntheticStructure]
    public let styles: [SyntheticStyle]

    public init(size: Int = 64, variant: Variant = .singleStructure) {
        precondition(size >= 16 && size <= 1024, "synthetic images must be 16...1024 pixels")
        self.size = size
        self.variant = variant
        structures = SyntheticStructure.allCases
        styles = SyntheticStyle.allCases
    }

    /// The family a dataset name stands for (`synthetic` or `synthetic-multi`), if any.
    public init?(name: String, size: Int) {
        guard let variant = Variant(rawValue: name) else { return nil }
        self.init(size: size, variant: variant)
    }

    public var imageShape: FeatureShape { FeatureShape(channels: 1, height: size, width: size) }

    public var taskNames: [String] {
        structures.flatMap { s in styles.map { "\(variant.rawValue)/\(s.rawValue)/\($0.rawValue)" } }
    }

    public var identity: DatasetIdentity {
        let description = variant == .singleStructure
            ? "synthetic v\(Self.generatorVersion) size \(size) \(taskNames.joined(separator: ","))"
            : "synthetic-multi v\(Self.generatorVersion) size \(size) \(taskNames.joined(separator: ","))"
        return DatasetIdentity(name: variant.rawValue, fingerprint: SHA256.hex(Array(description.utf8)))
    }

    public var defaultSplit: TaskSplit {
        switch variant {
        case .singleStructure:
            TaskSplit(validationPatterns: ["synthetic/ring/*"], testPatterns: ["synthetic/paired/*", "synthetic/*/xray"])
        case .multiStructure:
            TaskSplit(validationPatterns: ["synthetic-multi/ring/*"], testPatterns: ["synthetic-multi/paired/*"])
        }
    }

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
    /// In the multi-structure family the image depends only on the style, the sample and the
    /// image number, so every structure's task sees the same image.
    public func render(task: Int, index: UInt64, seed: UInt64, image: Int) -> (image: [Float], mask: [Float]) {
        let (structure, style) = kind(of: task)
        switch variant {
        case .singleStructure:
            var rng = RandomStream(key: [seed, stableHash(taskNames[task]), index, UInt64(image)])
            var scene = Scene(structure: structure, height: size, width: size, rng: &rng)
            for _ in 0..<8 where !scene.mask.contains(1) {
                scene = Scene(structure: structure, height: size, width: size, rng: &rng)
            }
            var pixels = style.render(scene, rng: &rng)
            normalise(&pixels)
            return (pixels, scene.mask)
        case .multiStructure:
            var rng = RandomStream(key: [seed, stableHash("\(variant.rawValue)/\(style.rawValue)"), index, UInt64(image)])
            var scene = Scene(allStructuresWithHeight: size, width: size, rng: &rng)
            for _ in 0..<8 where !structures.allSatisfy({ scene.labels.contains(Scene.label($0)) }) {
                scene = Scene(allStructuresWithHeight: size, width: size, rng: &rng)
            }
            var pixels = style.render(scene, rng: &rng)
            normalise(&pixels)
            return (pixels, scene.mask(label: Scene.label(structure)))
        }
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
