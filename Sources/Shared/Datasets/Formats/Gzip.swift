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
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        var input = [UInt8](data)
        let total = input.count
        var consumed = 0
        while true {
            let status: Int32 = input.withUnsafeMutableBufferPointer { inp in
                buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_in = inp.baseAddress! + consumed
                    stream.avail_in = uInt(total - consumed)
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    consumed = total - Int(stream.avail_in)
                    return s
                }
            }
            let produced = chunk - Int(stream.avail_out)
            output.append(buffer, count: produced)
            if let prefix, output.count >= prefix { return output.prefix(prefix) }
            guard output.count <= limit else { throw Failure(description: "decompressed data exceeds \(limit) bytes") }
            switch status {
            case Z_STREAM_END:
                // Another gzip member may follow.
                if consumed < total, total - consumed >= 2, input[consumed] == 0x1F, input[consumed + 1] == 0x8B {
                    inflateReset(&stream)
                    continue
                }
                return output
            case Z_OK:
                if consumed == total && produced == 0 { throw Failure(description: "truncated gzip data") }
            case Z_BUF_ERROR:
                if consumed == total { throw Failure(description: "truncated gzip data") }
            default:
                throw Failure(description: "corrupt gzip data (zlib status \(status))")
            }
        }
    }

    /// Deflates into a gzip stream.
    public static func compress(_ data: Data, level: Int32 = 6) throws(Failure) -> Data {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw Failure(description: "zlib could not start") }
        defer { deflateEnd(&stream) }
        var input = [UInt8](data)
        if input.isEmpty { input = [0]; stream.avail_in = 0 }
        let count = data.count
        let bound = Int(deflateBound(&stream, uLong(input.count)))
        var out = [UInt8](repeating: 0, count: bound + 64)
        let status: Int32 = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = inp.baseAddress
                stream.avail_in = uInt(count)
                stream.next_out = o.baseAddress
                stream.avail_out = uInt(o.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Failure(description: "gzip compression failed (\(status))") }
        return Data(out.prefix(Int(stream.total_out)))
    }
}
