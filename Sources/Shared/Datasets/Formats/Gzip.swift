import CZlib
import Foundation

/// gzip compression and decompression (and CRC-32) through zlib.
public enum Gzip {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// CRC-32 (zlib's polynomial, as Python's `zlib.crc32`) of a byte string.
    public static func crc32(_ bytes: some Collection<UInt8>) -> UInt32 {
        let array = Array(bytes)
        return array.withUnsafeBufferPointer { buf in
            UInt32(CZlib.crc32(0, buf.baseAddress, uInt(buf.count)))
        }
    }

    /// True if the bytes start with the gzip magic number.
    public static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// Inflates a gzip stream (several members are concatenated), refusing to produce more
    /// than `limit` bytes so a hostile file cannot exhaust memory. With `prefix`, stops once
    /// that many bytes are out and returns them (a header, without the rest).
    public static func decompress(_ data: Data, limit: Int, prefix: Int? = nil) throws(Failure) -> Data {
        guard !data.isEmpty else { throw Failure(description: "empty gzip data") }
        let inflater = try Inflater(limit: limit)
        var output = Data()
        var done = false, failure: Failure?
        data.withUnsafeBytes { input in
            do throws(Failure) {
                try inflater.feed(input) { chunk in
                    output.append(contentsOf: chunk)
                    if let prefix, output.count >= prefix { done = true }
                    return !done
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        if let prefix, done { return output.prefix(prefix) }
        try inflater.finish()
        return output
    }

    /// A gzip stream inflated piece by piece, as its bytes arrive (from a file read in chunks),
    /// handing out the decompressed bytes a chunk at a time: memory stays one chunk whatever
    /// the stream's size. Several concatenated members are one stream; bytes after the last
    /// member that do not start another are ignored, as gzip does.
    public final class Inflater {
        private var stream = z_stream()
        private var buffer = [UInt8](repeating: 0, count: 1 << 20)
        private let limit: Int
        /// Decompressed bytes handed out so far.
        public private(set) var produced = 0
        /// The current member ended; what follows must start another member.
        private var memberEnded = false
        /// Bytes after the last member that start no other: ignored from then on.
        private var trailing = false
        private var started = false

        public init(limit: Int) throws(Failure) {
            self.limit = limit
            guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw Failure(description: "zlib could not start")
            }
        }

        deinit { inflateEnd(&stream) }

        /// Inflates `input`, handing each decompressed piece to `sink` (valid only during the
        /// call); stops early, without error, when `sink` returns false.
        public func feed(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws(Failure) -> Bool) throws(Failure) {
            guard !trailing, let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self), !input.isEmpty else { return }
            var consumed = 0, full = false
            // Zlib may hold more output after the input is consumed when the buffer filled.
            while consumed < input.count || full {
                if memberEnded {
                    guard consumed < input.count else { return }
                    // Another member must start with the gzip magic number (a member boundary
                    // may fall between two chunks: one byte is enough to tell it cannot be one).
                    guard base[consumed] == 0x1F, consumed + 1 >= input.count || base[consumed + 1] == 0x8B else {
                        trailing = true
                        return
                    }
                    inflateReset(&stream)
                    memberEnded = false
                }
                started = true
                let (status, out) = buffer.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
                    stream.avail_in = uInt(input.count - consumed)
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    consumed = input.count - Int(stream.avail_in)
                    return (s, out.count - Int(stream.avail_out))
                }
                produced += out
                full = out == buffer.count
                guard produced <= limit else { throw Failure(description: "decompressed data exceeds \(limit) bytes") }
                if out > 0 {
                    let more = try buffer.withUnsafeBytes { b -> Result<Bool, Failure> in
                        do throws(Failure) { return .success(try sink(UnsafeRawBufferPointer(rebasing: b[0..<out]))) } catch { return .failure(error) }
                    }.get()
                    if !more { return }
                }
                switch status {
                case Z_STREAM_END: memberEnded = true
                case Z_OK: continue
                case Z_BUF_ERROR:
                    if consumed == input.count { return }
                    throw Failure(description: "corrupt gzip data (zlib made no progress)")
                default: throw Failure(description: "corrupt gzip data (zlib status \(status))")
                }
            }
        }

        /// Checks the stream is complete: every member that started also ended.
        public func finish() throws(Failure) {
            guard started else { throw Failure(description: "empty gzip data") }
            guard memberEnded || trailing else { throw Failure(description: "truncated gzip data") }
        }
    }

    /// Deflates into a gzip stream.
    public static func compress(_ data: Data, level: Int32 = 6) throws(Failure) -> Data {
        var result: Result<Data, Failure> = .failure(Failure(description: "not compressed"))
        data.withUnsafeBytes { raw in
            do throws(Failure) { result = .success(try compress([raw], level: level)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Deflates the concatenation of `parts` into one gzip member, reading them in place and
    /// holding only the compressed output (a label map of a large volume is not copied).
    public static func compress(_ parts: [UnsafeRawBufferPointer], level: Int32 = 6) throws(Failure) -> Data {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw Failure(description: "zlib could not start") }
        defer { deflateEnd(&stream) }
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 18)
        let parts = parts.isEmpty ? [UnsafeRawBufferPointer(start: nil, count: 0)] : parts
        for (i, part) in parts.enumerated() {
            let flush = i == parts.count - 1 ? Z_FINISH : Z_NO_FLUSH
            // zlib reads next_in only while avail_in > 0; an empty part passes no pointer.
            stream.next_in = part.isEmpty ? nil : UnsafeMutablePointer(mutating: part.baseAddress!.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(part.count)
            var status: Int32 = Z_OK
            repeat {
                let out = buffer.withUnsafeMutableBufferPointer { o -> Int in
                    stream.next_out = o.baseAddress
                    stream.avail_out = uInt(o.count)
                    status = deflate(&stream, flush)
                    return o.count - Int(stream.avail_out)
                }
                output.append(buffer, count: out)
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                    throw Failure(description: "gzip compression failed (\(status))")
                }
            } while flush == Z_FINISH ? status != Z_STREAM_END : stream.avail_in > 0
        }
        return output
    }
}
