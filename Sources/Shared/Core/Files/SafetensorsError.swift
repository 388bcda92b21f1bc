/// A safetensors file that cannot be used, and why.
public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String)
    case unwritable(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case unsupportedType(path: String, name: String, dtype: String)
    case missing(path: String, name: String)
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .unreadable(let p): "\(p): cannot read the file"
        case .unwritable(let p, let r): "\(p): cannot write: \(r)"
        case .corrupt(let p, let r): "\(p): not a valid safetensors file: \(r)"
        case .unsupportedType(let p, let n, let d): "\(p): tensor '\(n)' has unsupported dtype \(d) (F32, F64, F16 and BF16 are read)"
        case .missing(let p, let n): "\(p): tensor '\(n)' is missing"
        case .shapeMismatch(let p, let n, let e, let f): "\(p): tensor '\(n)' has shape \(f), expected \(e)"
        }
    }
}
