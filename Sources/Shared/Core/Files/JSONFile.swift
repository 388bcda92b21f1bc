import Foundation

/// The one way MedMAML writes and reads its JSON outputs (results, study state, reports):
/// Codable values, keys sorted and indented so files diff well, non-finite numbers as the
/// strings "nan", "inf" and "-inf", written atomically (`AtomicFile`).
public enum JSONFile {
    /// The bytes `write` puts in a file, ending with a newline.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(value) + Data("\n".utf8)
    }

    /// Writes `value` to `path`, replacing the file atomically.
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        try AtomicFile.write(try encode(value), to: path)
    }

    /// Reads a value `write` wrote.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        try canonicalDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Text outputs (reports, summaries), written atomically with a final newline.
public enum TextFile {
    public static func write(_ text: String, to path: String) throws {
        try AtomicFile.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8), to: path)
    }
}
