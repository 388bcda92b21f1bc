import Foundation

extension Wire {
    /// A 128-bit run identifier, random per run, that every message carries.
    public struct RunID: Hashable, Codable, Sendable, CustomStringConvertible {
        public var bytes: [UInt8]
        public static let none = RunID(bytes: Array(repeating: 0, count: 16))
        public init(bytes: [UInt8]) {
            precondition(bytes.count == 16, "a run id is 16 bytes")
            self.bytes = bytes
        }
        /// An unguessable id from the operating system's secure random source.
        public static func random() -> RunID {
            var g = SystemRandomNumberGenerator()
            return RunID(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) })
        }
        public init?(hex: String) {
            let chars = Array(hex.utf8)
            guard chars.count == 32 else { return nil }
            var out: [UInt8] = []
            for i in stride(from: 0, to: 32, by: 2) {
                guard let b = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
                out.append(b)
            }
            self.init(bytes: out)
        }
        public var description: String { bytes.map { String(format: "%02x", $0) }.joined() }
    }
}
