import Foundation

/// JSON with sorted keys, so that equal values always give equal bytes (for fingerprints).
public func canonicalJSON<T: Encodable>(_ value: T) -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(value)) ?? Data()
}
