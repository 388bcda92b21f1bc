import Core

/// Labelled tasks with union tasks beside them: for every two meta-train tasks that label
/// different structures on the same images (the organ tasks of one CT, the structures of
/// `synthetic-multi` in one style), a task whose target is both structures at once. The
/// few meta-train structures become more kinds of target (a structure with its neighbour, two
/// separate parts), so the initialisation learns to segment what the support masks mark
/// rather than memorising a handful of structures (task augmentation; Rajendran et al.,
/// NeurIPS 2020; Yao et al., ICML 2021). Union tasks combine meta-train tasks only, so a
/// meta-validation or meta-test structure is never a target, and they draw no other images.
///
/// Which tasks share images is read from the data, not assumed: the meta-train tasks whose
/// first sample (under a fixed seed) has the same image (by its SHA-256) form a group, and
/// every pair in a group is a union task. Every sample checks it again: two tasks whose
/// images differ for a sample give an error naming both, never a mask on the wrong image.
///
/// Task numbers: the base's first, then the union tasks, named `union/<first>+<second>`.
public struct UnionAugmentedSource: TaskSource {
    public let base: TaskSource
    /// The two base task numbers of each union task.
    public let pairs: [(Int, Int)]
    /// The union tasks' names, in task-number order after the base's.
    public let unionNames: [String]
    /// Labelled tasks before the union tasks.
    private let labelled: Int
    /// The seed of the sample that groups the tasks.
    static let groupingSeed: UInt64 = 0x5A4E_D1A6

    /// Union tasks of the meta-train tasks of `split` on `base`. Throws when no two meta-train
    /// tasks share their images (there is nothing to unite) or a task cannot be sampled.
    public init(base: TaskSource, split: TaskSplit) throws(DataError) {
        self.base = base
        let names = base.taskNames
        labelled = names.count
        // Grouped by a hash of the image, not the image: one key per task whatever the size.
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for task in split.partition(names).train {
            let image = SHA256.hex(floats: try base.sample(task: task, index: 0, seed: Self.groupingSeed, support: 1, query: 0).supportImages)
            if groups[image] == nil { order.append(image) }
            groups[image, default: []].append(task)
        }
        var pairs: [(Int, Int)] = []
        for key in order {
            let tasks = groups[key]!
            for i in tasks.indices { for j in tasks.indices where j > i { pairs.append((tasks[i], tasks[j])) } }
        }
        guard !pairs.isEmpty else {
            throw .badRequest("no two meta-train tasks label the same images, so there are no union tasks to add"
                              + " (they need tasks labelling different structures on the same images, as synthetic-multi's do;"
                              + " a Decathlon dataset's label tasks draw their own slices)")
        }
        self.pairs = pairs
        unionNames = pairs.map { "union/\(names[$0.0])+\(names[$0.1])" }
    }

    public var identity: DatasetIdentity {
        DatasetIdentity(name: base.identity.name + "+union",
                        fingerprint: SHA256.hex(Array((base.identity.fingerprint + "\n" + unionNames.joined(separator: "\n")).utf8)))
    }
    public var imageShape: FeatureShape { base.imageShape }
    public var taskNames: [String] { base.taskNames + unionNames }
    public var defaultSplit: TaskSplit { base.defaultSplit }

    public func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        guard task >= 0, task < labelled + pairs.count else { throw .badRequest("no task number \(task)") }
        if task < labelled { return try base.sample(task: task, index: index, seed: seed, support: support, query: query) }
        let (a, b) = pairs[task - labelled]
        var first = try base.sample(task: a, index: index, seed: seed, support: support, query: query)
        let second = try base.sample(task: b, index: index, seed: seed, support: support, query: query)
        guard first.supportImages == second.supportImages, first.queryImages == second.queryImages,
              first.supportMasks.count == second.supportMasks.count, first.queryMasks.count == second.queryMasks.count
        else {
            throw .badRequest("\(unionNames[task - labelled]): the two tasks' images differ in sample \(index), so their masks cannot be united")
        }
        for i in first.supportMasks.indices { first.supportMasks[i] = max(first.supportMasks[i], second.supportMasks[i]) }
        for i in first.queryMasks.indices { first.queryMasks[i] = max(first.queryMasks[i], second.queryMasks[i]) }
        return first
    }
}
