import Core
import Datasets

/// The images of some labelled tasks, without their masks: the unlabelled images a
/// pseudo-task draws from. Group g is task `tasks[g]` of `base`; image i of a group is the
/// first support image of that task's sample i under a fixed seed, so it is a pure function
/// of (task, index) on any machine.
public struct TaskImages: UnlabelledImages {
    public let base: TaskSource
    public let tasks: [Int]
    /// The tasks' names, read once: a source may build its name list on every call.
    public let groups: [String]
    /// The seed of the samples the images are taken from.
    public static let seed: UInt64 = 0x1A4E_1ED5

    public init(base: TaskSource, tasks: [Int]) {
        self.base = base
        self.tasks = tasks
        let names = base.taskNames
        groups = tasks.map { names[$0] }
    }

    public var identity: DatasetIdentity {
        let names = groups.joined(separator: "\n")
        return DatasetIdentity(name: base.identity.name + "-images",
                               fingerprint: SHA256.hex(Array((base.identity.fingerprint + "\n" + names).utf8)))
    }
    public var imageShape: FeatureShape { base.imageShape }
    /// Samples are drawn by index from each task's own pool (volumes, slices, renderings).
    public func imageCount(group: Int) -> Int { 1 << 40 }
    public func image(group: Int, index: Int) throws(DataError) -> [Float] {
        guard tasks.indices.contains(group), index >= 0 else { throw .badRequest("no image \(index) in group \(group)") }
        return try base.sample(task: tasks[group], index: UInt64(index), seed: Self.seed, support: 1, query: 0).supportImages
    }
}

/// Labelled tasks with self-supervised superpixel pseudo-tasks beside them: one pseudo-task
/// per meta-train task, "segment a superpixel region" in augmented views of that task's
/// images (`PseudoTaskSource`). Meta-training samples both, so the initialisation learns to
/// segment whatever the support masks mark, not only the few meta-train structures (task
/// augmentation; Rajendran et al., NeurIPS 2020, on why meta-learning needs it; SSL-ALPNet
/// for the pseudo-tasks). The pseudo-tasks read only meta-train tasks' images, the images
/// every baseline trains on too, never a meta-validation or meta-test task's.
///
/// Task numbers: the base's first, then the pseudo-tasks, named `pseudo/<task name>`.
public struct PseudoAugmentedSource: TaskSource {
    public let base: TaskSource
    public let pseudo: PseudoTaskSource
    /// Labelled tasks before the pseudo-tasks.
    private let labelled: Int

    /// Pseudo-tasks on the images of `split`'s meta-train tasks of `base`.
    public init(base: TaskSource, split: TaskSplit, options: PseudoTaskOptions) {
        self.base = base
        labelled = base.taskNames.count
        pseudo = PseudoTaskSource(images: TaskImages(base: base, tasks: split.partition(base.taskNames).train), options: options)
    }

    public var identity: DatasetIdentity {
        DatasetIdentity(name: base.identity.name + "+pseudo",
                        fingerprint: SHA256.hex(Array((base.identity.fingerprint + "\n" + pseudo.identity.fingerprint).utf8)))
    }
    public var imageShape: FeatureShape { base.imageShape }
    public var taskNames: [String] { base.taskNames + pseudo.taskNames }
    public var defaultSplit: TaskSplit { base.defaultSplit }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < labelled + pseudo.taskNames.count else { throw .badRequest("no task number \(task)") }
        if task < labelled { return try base.sample(task: task, index: index, seed: seed, support: support, query: query) }
        return try pseudo.sample(task: task - labelled, index: index, seed: seed, support: support, query: query)
    }
}
