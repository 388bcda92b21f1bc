/// A task to compute: which task of a source, and which sample of it. Together with the
/// run's seed it determines the images exactly, so this is all that crosses the network.
public struct TaskRef: Codable, Hashable, Sendable, CustomStringConvertible {
    public var task: Int
    public var index: UInt64

    public init(task: Int, index: UInt64) {
        self.task = task
        self.index = index
    }

    public var description: String { "task \(task) sample \(index)" }
}
