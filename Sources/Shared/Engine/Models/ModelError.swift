/// A model description that cannot be built.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let why): "invalid model: \(why)"
        }
    }
}
