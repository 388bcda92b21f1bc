/// A meta-learning configuration that cannot be used.
public enum MetaConfigError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let why): "invalid configuration: \(why)"
        }
    }
}
