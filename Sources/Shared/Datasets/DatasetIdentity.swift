/// A dataset's name and a fingerprint of its content (or, for generated data, of the
/// generator and its settings).
public struct DatasetIdentity: Codable, Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var fingerprint: String
    public init(name: String, fingerprint: String) {
        self.name = name
        self.fingerprint = fingerprint
    }
    public var description: String { "\(name) (\(fingerprint.prefix(16)))" }
}
