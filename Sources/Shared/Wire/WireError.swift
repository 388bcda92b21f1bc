/// A message that fails validation; it is counted, logged and dropped.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case version(UInt16)
    case nonFinite

    public var description: String {
        switch self {
        case .malformed(let why): "malformed message: \(why)"
        case .version(let v): "protocol version \(v), this build speaks \(Wire.version)"
        case .nonFinite: "payload contains NaN or infinity"
        }
    }
}
