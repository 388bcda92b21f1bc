/// A task sample that cannot be used.
public enum TaskError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let why): "invalid task: \(why)"
        }
    }
}
