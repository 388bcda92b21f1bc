import Foundation

/// JSON with sorted keys, so that equal values always give equal bytes (for fingerprints and
/// wire bodies). Non-finite floating-point values are written as the strings "nan", "inf"
/// and "-inf" (and read back by `canonicalDecoder`), so a diverged loss still encodes.
public func canonicalJSON<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try encoder.encode(value)
}

/// The decoder of `canonicalJSON`'s output.
public func canonicalDecoder() -> JSONDecoder {
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return decoder
}
