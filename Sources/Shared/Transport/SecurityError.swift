/// A key file or security setting that cannot be used.
public enum SecurityError: Error, CustomStringConvertible {
    case file(path: String, reason: String)
    case unavailable(String)
    case insecure(String)

    public var description: String {
        switch self {
        case .file(let p, let r): "\(p): \(r)"
        case .unavailable(let r): r
        case .insecure(let r): r
        }
    }
}
