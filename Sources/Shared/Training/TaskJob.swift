import Core
import MetaLearning

/// What a task computes.
public enum TaskKind: String, Codable, Sendable {
    /// The task's meta-gradient at the step's parameters.
    case metaGradient
    /// Adapt to the task and score its query set (meta-test).
    case evaluate
}

/// One unit of work of a batch: a task sample to compute a meta-gradient for, or to adapt to
/// and score.
public struct TaskJob: Sendable, Equatable {
    public var kind: TaskKind
    public var ref: TaskRef
    public init(kind: TaskKind, ref: TaskRef) {
        self.kind = kind
        self.ref = ref
    }
}
