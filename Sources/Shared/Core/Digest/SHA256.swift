import CSodium

/// SHA-256 digests, from libsodium.
public enum SHA256 {
    /// The digest of raw bytes, as 64 lowercase hex characters.
    public static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var hasher = Hasher()
        hasher.update(bytes)
        return hasher.finish()
    }

    /// The digest of Float32 values in little-endian byte order (the wire and checkpoint order).
    public static func hex(floats: [Float]) -> String {
        #if _endian(little)
        return floats.withUnsafeBytes { hex($0) }
        #else
        let bytes = floats.flatMap { v -> [UInt8] in
            let b = v.bitPattern.littleEndian
            return [UInt8(b & 0xFF), UInt8((b >> 8) & 0xFF), UInt8((b >> 16) & 0xFF), UInt8(b >> 24)]
        }
        return bytes.withUnsafeBytes { hex($0) }
        #endif
    }

    public static func hex(_ data: [UInt8]) -> String {
        data.withUnsafeBytes { hex($0) }
    }

    /// A digest computed piece by piece (a file read in chunks): the same digest as `hex` of
    /// the concatenation.
    public struct Hasher {
        private var state = crypto_hash_sha256_state()

        public init() {
            _ = sodium_init()
            crypto_hash_sha256_init(&state)
        }

        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            crypto_hash_sha256_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }

        /// The digest, as 64 lowercase hex characters.
        public mutating func finish() -> String {
            var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
            digest.withUnsafeMutableBufferPointer { _ = crypto_hash_sha256_final(&state, $0.baseAddress!) }
            return digest.map { String(format: "%02x", $0) }.joined()
        }
    }
}
