import Core
import Foundation

/// Images with full label maps: what multi-class supervised training (the transfer baseline
/// of a task universe) learns from.
public protocol LabelMapSource: Sendable {
    /// Foreground classes; label values are 1...classCount (0: background).
    var classCount: Int { get }
    /// `count` images and their label maps (row-major, one byte per pixel), a pure function
    /// of the arguments: the same images the tasks of sample `index` show.
    func labelledImages(index: UInt64, seed: UInt64, count: Int) -> (images: [Float], labels: [UInt8])
}

/// The task universe (`--dataset universe`): a procedural family of few-shot segmentation
/// tasks in which meta-learning has something to learn. Images are synthesised SynthSeg-style
/// from random label maps (`UniverseAnatomy`) with appearance randomised per image
/// (`UniverseRendering`); a task is a rule on the label map (`TaskType`), so the same image
/// serves tasks with different targets (the tasks are mutually exclusive: only the support
/// set tells which is asked).
///
/// - Meta-train tasks: `types` task types of the training rules, drawn in a fixed sequence
///   from the universe's seed (so 10 types include the first 3), named
///   `universe/train/<type>`; or, with `types` nil, one task per training rule,
///   `universe/train/<rule>/*`, whose parameters are drawn afresh for every sample.
/// - Meta-validation and meta-test tasks: four types of each held-out rule
///   (`universe/val/...`, `universe/test/...`), the same whatever `types` is. No held-out
///   rule is ever a training rule.
/// - Meta-augmentation (Rajendran et al., NeurIPS 2020): for meta-train tasks, half the
///   samples swap foreground and background in every mask, so that even a small set of task
///   types cannot be solved without the support set.
///
/// Every image and mask is a pure function of (run seed, sample index, image number, task),
/// identical on every machine.
public struct TaskUniverse: TaskSource, LabelMapSource {
    /// Bumped whenever generation changes, so workers with other images are refused.
    public static let generatorVersion = 2
    /// Held-out task types per held-out rule.
    public static let heldOutPerRule = 4

    /// What a universe holds, as a run records it.
    public struct Options: Codable, Hashable, Sendable {
        /// Meta-train task types; nil: unbounded (fresh parameters for every sample).
        public var types: Int?
        /// Swap foreground and background in half the meta-train samples.
        public var metaAugmentation = false
        /// Which task types the universe holds (independent of the run's sampling seed).
        public var seed: UInt64 = 0

        public init(types: Int? = nil, metaAugmentation: Bool = false, seed: UInt64 = 0) {
            self.types = types
            self.metaAugmentation = metaAugmentation
            self.seed = seed
        }

        /// Refuses impossible counts.
        public func validate() throws(DataError) {
            if let types, !(1...100_000).contains(types) { throw .badRequest("a universe holds 1...100000 task types (or unbounded), not \(types)") }
        }
    }

    /// A task of the source.
    public enum Task: Sendable, Equatable {
        /// A fixed type.
        case fixed(TaskType)
        /// A training rule whose parameters are drawn for each sample.
        case fresh(TaskRule)
    }

    public let size: Int
    public let options: Options
    public let tasks: [Task]
    public let taskNames: [String]
    public let identity: DatasetIdentity
    /// Label maps the types are checked on.
    private let probes: [UniverseAnatomy]

    /// The universe with images of `size` pixels square.
    public init(size: Int, options: Options = Options()) throws(DataError) {
        guard (16...1024).contains(size) else { throw .badRequest("universe images must be 16...1024 pixels, not \(size)") }
        try options.validate()
        self.size = size
        self.options = options
        let probes = (0..<12).map { p in
            var rng = RandomStream(key: [options.seed, 0x7072_6F62_65, UInt64(p)])
            return UniverseAnatomy(size: size, rng: &rng)
        }
        self.probes = probes
        let minimum = Self.minimumPixels(size)
        func draw(_ rules: [TaskRule], count: Int, stream: UInt64) -> [TaskType] {
            var rng = RandomStream(key: [options.seed, stream])
            var out: [TaskType] = [], seen = Set<String>()
            var attempts = 0
            while out.count < count && attempts < count * 400 {
                attempts += 1
                let type = TaskType.random(rules[rng.below(rules.count)], rng: &rng)
                guard !seen.contains(type.description) else { continue }
                seen.insert(type.description)
                if type.isUsable(on: probes, minimumPixels: minimum) { out.append(type) }
            }
            return out
        }
        var tasks: [Task] = []
        var names: [String] = []
        if let n = options.types {
            let types = draw(TaskRule.rules(.train), count: n, stream: 0x7472_6169_6E)
            guard types.count == n else { throw .badRequest("the universe has only \(types.count) usable training task types, fewer than \(n)") }
            tasks += types.map(Task.fixed)
            names += types.map { "universe/train/\($0)" }
        } else {
            tasks += TaskRule.rules(.train).map(Task.fresh)
            names += TaskRule.rules(.train).map { "universe/train/\($0.rawValue)/*" }
        }
        for (role, prefix, stream) in [(TaskSplit.Role.validation, "val", UInt64(0x7661_6C)), (.test, "test", 0x7465_7374)] {
            for rule in TaskRule.rules(role) {
                let types = draw([rule], count: Self.heldOutPerRule, stream: stream ^ stableHash(rule.rawValue))
                tasks += types.map(Task.fixed)
                names += types.map { "universe/\(prefix)/\($0)" }
            }
        }
        self.tasks = tasks
        taskNames = names
        let description = "universe v\(Self.generatorVersion) size \(size) seed \(options.seed) augment \(options.metaAugmentation) "
            + names.joined(separator: ",")
        identity = DatasetIdentity(name: "universe", fingerprint: SHA256.hex(Array(description.utf8)))
    }

    /// The smallest target that counts as present: 3 pixels at 32 pixels, scaled with the area.
    static func minimumPixels(_ size: Int) -> Int { max(2, 3 * size * size / 1024) }

    public var imageShape: FeatureShape { FeatureShape(channels: 1, height: size, width: size) }
    public var classCount: Int { UniverseClass.allCases.count }

    public var defaultSplit: TaskSplit { TaskSplit(validationPatterns: ["universe/val/*"], testPatterns: ["universe/test/*"]) }

    /// The label map and image of image `image` of sample `index`, attempt `attempt`: the same
    /// for every task.
    func scene(index: UInt64, seed: UInt64, image: Int, attempt: Int) -> (anatomy: UniverseAnatomy, pixels: [Float]) {
        var (anatomy, rng) = labelMap(index: index, seed: seed, image: image, attempt: attempt)
        return (anatomy, UniverseRendering.render(anatomy, rng: &rng))
    }

    /// The label map of a scene and the random stream its rendering continues from: a scene
    /// whose target turns out empty is never rendered.
    func labelMap(index: UInt64, seed: UInt64, image: Int, attempt: Int) -> (UniverseAnatomy, RandomStream) {
        var rng = RandomStream(key: [seed, 0x756E_6976, index, UInt64(image), UInt64(attempt)])
        return (UniverseAnatomy(size: size, rng: &rng), rng)
    }

    /// The task type a sample of `task` uses.
    public func type(task: Int, index: UInt64, seed: UInt64) -> TaskType {
        switch tasks[task] {
        case .fixed(let type): return type
        case .fresh(let rule):
            // A fresh type for the sample: the first of a few draws usable on two probes.
            var rng = RandomStream(key: [seed, 0x6672_6573, stableHash(rule.rawValue), index])
            var type = TaskType.random(rule, rng: &rng)
            for _ in 0..<16 where !type.isUsable(on: Array(probes.prefix(2)), minimumPixels: Self.minimumPixels(size)) {
                type = TaskType.random(rule, rng: &rng)
            }
            return type
        }
    }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < tasks.count else { throw .badRequest("no universe task number \(task)") }
        guard support > 0, query >= 0, support + query <= 4096 else { throw .badRequest("bad shot counts \(support)+\(query)") }
        let type = type(task: task, index: index, seed: seed)
        let plane = size * size, minimum = 1
        var images: [Float] = [], masks: [Float] = []
        images.reserveCapacity((support + query) * plane)
        masks.reserveCapacity((support + query) * plane)
        for i in 0..<(support + query) {
            // Most images serve every task; an image on which this task's target is empty is
            // drawn again (for this task only).
            var (anatomy, rng) = labelMap(index: index, seed: seed, image: i, attempt: 0)
            var target = type.target(anatomy)
            var attempt = 1
            while target.reduce(0, { $0 + ($1 ? 1 : 0) }) < minimum && attempt < 12 {
                (anatomy, rng) = labelMap(index: index, seed: seed, image: i, attempt: attempt)
                target = type.target(anatomy)
                attempt += 1
            }
            images += UniverseRendering.render(anatomy, rng: &rng)
            masks += target.map { $0 ? 1 : 0 }
        }
        if options.metaAugmentation && taskNames[task].hasPrefix("universe/train/") {
            var rng = RandomStream(key: [seed, 0x6175_676D, UInt64(task), index])
            if rng.chance(0.5) { for j in masks.indices { masks[j] = 1 - masks[j] } }
        }
        let split = support * plane
        return TaskSample(shape: imageShape, supportImages: Array(images[..<split]), supportMasks: Array(masks[..<split]),
                          queryImages: Array(images[split...]), queryMasks: Array(masks[split...]))
    }

    public func labelledImages(index: UInt64, seed: UInt64, count: Int) -> (images: [Float], labels: [UInt8]) {
        var images: [Float] = [], labels: [UInt8] = []
        for i in 0..<count {
            let s = scene(index: index, seed: seed, image: i, attempt: 0)
            images += s.pixels
            labels += s.anatomy.labels
        }
        return (images, labels)
    }
}
