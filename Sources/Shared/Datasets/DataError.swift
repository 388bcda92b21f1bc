/// Data that cannot be used, naming the file (or task) and the reason.
public enum DataError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case emptyTask(task: String, reason: String)
    case badRequest(String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot read: \(r)"
        case .invalid(let p, let r): "\(p): \(r)"
        case .unsupported(let p, let r): "\(p): unsupported: \(r)"
        case .emptyTask(let t, let r): "task \(t): \(r)"
        case .badRequest(let r): r
        }
    }
}
