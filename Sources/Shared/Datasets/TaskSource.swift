import Core

/// Where tasks come from: a list of named tasks and a deterministic way to draw a task sample.
///
/// `sample(task:index:seed:support:query:)` must return the same images for the same
/// arguments on any machine and thread: the coordinator sends workers only a task
/// description (task, sample index, seed), never images.
public protocol TaskSource: Sendable {
    /// Which data this is; workers must agree on it with the coordinator.
    var identity: DatasetIdentity { get }
    /// Per-image shape of the images the source produces (the model input).
    var imageShape: FeatureShape { get }
    /// Stable task names, for example `synthetic/organ/ct` or `Task09_Spleen/label-1/axial`.
    var taskNames: [String] { get }
    /// The default split of tasks into meta-train and meta-test.
    var defaultSplit: TaskSplit { get }
    /// Draws `support` + `query` labelled images of task number `task`.
    func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample
    /// The samples of several task references (a meta-batch), in order. The same as calling
    /// `sample` for each; a shared source (`SharedSamples`) splits their rendering among
    /// its readers.
    func samples(_ refs: [TaskRef], seed: UInt64, support: Int, query: Int) throws(DataError) -> [TaskSample]
}

extension TaskSource {
    public func samples(_ refs: [TaskRef], seed: UInt64, support: Int, query: Int) throws(DataError) -> [TaskSample] {
        var out: [TaskSample] = []
        out.reserveCapacity(refs.count)
        for ref in refs { out.append(try sample(task: ref.task, index: ref.index, seed: seed, support: support, query: query)) }
        return out
    }
}
