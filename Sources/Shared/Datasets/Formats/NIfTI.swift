import Core
import Foundation

/// A NIfTI-1 volume (`.nii` or `.nii.gz`), as the Medical Segmentation Decathlon and nnU-Net
/// store images and labels.
///
/// Reading validates the header (sizeof_hdr 348 in either byte order, magic `n+1`, dims,
/// datatype, bitpix, vox_offset, data length), converts any of the datatypes nibabel writes
/// (u/int8, u/int16, u/int32, u/int64, float32, float64) to Float and applies
/// scl_slope/scl_inter. 4D files give their first volume (`extraVolumesDropped` says so).
/// The writer stores a uint8 mask with the input's header (geometry and affine unchanged).
public struct NIfTIVolume: Sendable {
    /// Voxels along x, y, z.
    public var dims: (x: Int, y: Int, z: Int)
    /// Voxel size in the header's units (usually mm).
    public var spacing: (x: Float, y: Float, z: Float)
    /// Scaled voxel values, x fastest (NIfTI order).
    public var values: [Float]
    /// The 348-byte header as read (native byte order of the file).
    public var header: [UInt8]
    public var bigEndian: Bool
    public var datatype: Int
    /// Volumes beyond the first that a 4D file held.
    public var extraVolumesDropped: Int
    /// SHA-256 of the file as stored (compressed or not), when read from a file.
    public var fileDigest: String = ""

    public subscript(x: Int, y: Int, z: Int) -> Float { values[(z * dims.y + y) * dims.x + x] }

    /// The most voxels a volume may have (2^27: 512 x 512 x 512), so one file cannot make the
    /// reader allocate without bound.
    public static let maximumVoxels = 1 << 27
    /// The most bytes a file may have once decompressed (2 GiB: the largest volume of 8-byte
    /// voxels twice over): a small gzip file that would inflate to more is refused.
    public static let maximumFileBytes = 1 << 31

    // MARK: Reading

    /// Reads a `.nii` or `.nii.gz` file a chunk at a time, inflating and converting voxels as
    /// they arrive: memory is the volume's Float values and one chunk, whatever the file's size.
    public static func read(path: String) throws(DataError) -> NIfTIVolume {
        var decoder = Decoder(path: path)
        var hasher = SHA256.Hasher()
        try stream(path: path, chunk: 1 << 20, stored: { hasher.update($0) }) { (bytes) throws(DataError) -> Bool in
            try decoder.consume(bytes)
            return true
        }
        var volume = try decoder.finish()
        volume.fileDigest = hasher.finish()
        return volume
    }

    /// A file's dimensions and voxel size from its header alone (the file is read only as far
    /// as the header).
    public static func readGeometry(path: String) throws(DataError) -> (dims: (Int, Int, Int), spacing: (Float, Float, Float)) {
        var header: [UInt8] = []
        try stream(path: path, chunk: 1 << 16) { bytes in
            header += bytes.prefix(348 - header.count)
            return header.count < 348
        }
        guard header.count == 348 else { throw .invalid(path: path, reason: "file is \(header.count) bytes, shorter than a NIfTI-1 header (348)") }
        let le = Reader(bytes: header, bigEndian: false)
        let big = le.int32(0) != 348
        let r = Reader(bytes: header, bigEndian: big)
        let dims = (Int(r.int16(42)), Int(r.int16(44)), Int(r.int16(46)))
        func pix(_ i: Int) -> Float { let p = abs(r.float32(76 + 4 * i)); return p.isFinite && p > 0 ? p : 1 }
        return (dims, (pix(1), pix(2), pix(3)))
    }

    /// Reads the file at `path` a chunk at a time: `stored` sees its bytes as stored, `sink`
    /// them inflated when the file is gzip-compressed (as they are otherwise), until the file
    /// ends or `sink` returns false. A file named `.gz` must be gzip-compressed.
    private static func stream(path: String, chunk size: Int, stored: (UnsafeRawBufferPointer) -> Void = { _ in },
                               sink: (UnsafeRawBufferPointer) throws(DataError) -> Bool) throws(DataError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path: path, reason: "no such file or not readable") }
        defer { close(fd) }
        let notGzip = DataError.invalid(path: path, reason: "named .gz but not gzip-compressed")
        var inflater: Gzip.Inflater?
        var chunk = [UInt8](repeating: 0, count: size)
        var first = true, more = true
        while more {
            let n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            if first {
                first = false
                if n >= 2 && chunk[0] == 0x1F && chunk[1] == 0x8B {
                    do { inflater = try Gzip.Inflater(limit: maximumFileBytes) } catch { throw .invalid(path: path, reason: "\(error)") }
                } else if path.hasSuffix(".gz") {
                    throw notGzip
                }
            }
            // The sink's own error stops the inflation and is thrown as it is.
            var refused: DataError?
            let failure = chunk.withUnsafeBytes { all -> Gzip.Failure? in
                let bytes = UnsafeRawBufferPointer(rebasing: all[0..<n])
                stored(bytes)
                func pass(_ out: UnsafeRawBufferPointer) -> Bool {
                    do throws(DataError) { more = try sink(out) } catch { (refused, more) = (error, false) }
                    return more
                }
                guard let inflater else { _ = pass(bytes); return nil }
                do throws(Gzip.Failure) { try inflater.feed(bytes, sink: pass) } catch { return error }
                return nil
            }
            if let refused { throw refused }
            if let failure { throw .invalid(path: path, reason: "\(failure)") }
        }
        if first && path.hasSuffix(".gz") { throw notGzip }
        if more, let inflater {
            do { try inflater.finish() } catch { throw .invalid(path: path, reason: "\(error)") }
        }
    }

    /// Decodes a whole (decompressed) NIfTI-1 file held in memory.
    public static func decode(_ data: Data, path: String) throws(DataError) -> NIfTIVolume {
        var decoder = Decoder(path: path)
        var failure: DataError?
        data.withUnsafeBytes { bytes in
            do throws(DataError) { try decoder.consume(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
        return try decoder.finish()
    }

    static func elementSize(_ datatype: Int) -> Int? {
        switch datatype {
        case 2, 256: 1            // uint8, int8
        case 4, 512: 2            // int16, uint16
        case 8, 768, 16: 4        // int32, uint32, float32
        case 64, 1024, 1280: 8    // float64, int64, uint64
        default: nil
        }
    }

    struct Reader {
        let bytes: [UInt8]
        let bigEndian: Bool
        func raw<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            var v: T = 0
            for k in 0..<MemoryLayout<T>.size {
                let b = T(truncatingIfNeeded: bytes[at + k])
                v |= bigEndian ? b << (8 * (MemoryLayout<T>.size - 1 - k)) : b << (8 * k)
            }
            return v
        }
        func int16(_ at: Int) -> Int16 { raw(at, Int16.self) }
        func int32(_ at: Int) -> Int32 { raw(at, Int32.self) }
        func float32(_ at: Int) -> Float { Float(bitPattern: raw(at, UInt32.self)) }
    }

    // MARK: Writing

    /// Writes a uint8 volume (`labels`, x fastest, the dims of `like`) with `like`'s header:
    /// same geometry and affine, datatype uint8, no scaling, one volume, no extensions.
    /// Gzip-compressed if `path` ends in `.gz`. Atomic.
    public static func writeMask(_ labels: [UInt8], like: NIfTIVolume, to path: String) throws(DataError) {
        precondition(labels.count == like.dims.x * like.dims.y * like.dims.z, "label count does not match the volume")
        var h = like.header
        func put16(_ at: Int, _ v: Int16) {
            let u = UInt16(bitPattern: v)
            let b = like.bigEndian ? [UInt8(u >> 8), UInt8(u & 0xFF)] : [UInt8(u & 0xFF), UInt8(u >> 8)]
            h[at] = b[0]; h[at + 1] = b[1]
        }
        func putF(_ at: Int, _ v: Float) {
            let u = v.bitPattern
            for k in 0..<4 { h[at + k] = UInt8((u >> (like.bigEndian ? 8 * (3 - k) : 8 * k)) & 0xFF) }
        }
        put16(40, 3)
        for i in 4...7 { put16(40 + 2 * i, 1) }
        put16(70, 2)
        put16(72, 8)
        putF(108, 352)
        putF(112, 1)
        putF(116, 0)
        h += [0, 0, 0, 0]   // no extensions
        // The labels are read in place (compressed or written as they are), never copied whole.
        let failure = h.withUnsafeBytes { head in
            labels.withUnsafeBytes { body -> DataError? in
                if path.hasSuffix(".gz") {
                    let data: Data
                    do { data = try Gzip.compress([head, body]) } catch { return .unreadable(path: path, reason: "\(error)") }
                    do { try AtomicFile.write(data, to: path) } catch { return .unreadable(path: path, reason: "cannot write: \(error)") }
                } else {
                    do { try AtomicFile.write([head, body], to: path) } catch { return .unreadable(path: path, reason: "cannot write: \(error)") }
                }
                return nil
            }
        }
        if let failure { throw failure }
    }

    /// Writes `values` (x fastest, `dims`) as a NIfTI-1 volume of `datatype` (2: uint8, 16:
    /// float32) with `like`'s header, geometry and orientation, its first slice along z being
    /// `like`'s slice `firstSlice` (the sform's and qform's origins move with it): a crop of
    /// `like` along z, or the whole of it. Gzip-compressed if `path` ends in `.gz`. Atomic.
    public static func writeVolume(_ values: [Float], dims: (Int, Int, Int), like: NIfTIVolume, firstSlice: Int = 0,
                                   datatype: Int, to path: String) throws(DataError) {
        precondition(values.count == dims.0 * dims.1 * dims.2, "value count does not match the dimensions")
        precondition(datatype == 2 || datatype == 16, "uint8 or float32")
        var h = like.header
        let r = Reader(bytes: h, bigEndian: like.bigEndian)
        func put16(_ at: Int, _ v: Int16) {
            let u = UInt16(bitPattern: v)
            let b = like.bigEndian ? [UInt8(u >> 8), UInt8(u & 0xFF)] : [UInt8(u & 0xFF), UInt8(u >> 8)]
            h[at] = b[0]; h[at + 1] = b[1]
        }
        func putF(_ at: Int, _ v: Float) {
            let u = v.bitPattern
            for k in 0..<4 { h[at + k] = UInt8((u >> (like.bigEndian ? 8 * (3 - k) : 8 * k)) & 0xFF) }
        }
        put16(40, 3)
        put16(42, Int16(dims.0)); put16(44, Int16(dims.1)); put16(46, Int16(dims.2))
        for i in 4...7 { put16(40 + 2 * i, 1) }
        put16(70, Int16(datatype))
        put16(72, datatype == 2 ? 8 : 32)
        putF(108, 352)
        putF(112, 1)
        putF(116, 0)
        if firstSlice != 0 {
            let z = Float(firstSlice)
            // sform: origin + column 3 times the slice.
            for row in 0..<3 {
                let at = 280 + 16 * row
                putF(at + 12, r.float32(at + 12) + r.float32(at + 8) * z)
            }
            // qform: origin + R (0, 0, qfac dz z), R from the quaternion (b, c, d).
            let b = r.float32(256), c = r.float32(260), d = r.float32(264)
            let a = max(0, 1 - b * b - c * c - d * d).squareRoot()
            let qfac: Float = r.float32(76) < 0 ? -1 : 1
            let step = qfac * r.float32(88) * z
            let column = [2 * (a * c + b * d), 2 * (c * d - a * b), a * a + d * d - b * b - c * c]
            for k in 0..<3 { putF(268 + 4 * k, r.float32(268 + 4 * k) + column[k] * step) }
        }
        var data = Data(h)
        data.append(contentsOf: [0, 0, 0, 0])   // no extensions
        if datatype == 2 {
            data.append(contentsOf: values.map { UInt8(min(max($0.rounded(), 0), 255)) })
        } else {
            var raw = [UInt8]()
            raw.reserveCapacity(values.count * 4)
            for v in values {
                let u = v.bitPattern
                for k in 0..<4 { raw.append(UInt8((u >> (like.bigEndian ? 8 * (3 - k) : 8 * k)) & 0xFF)) }
            }
            data.append(contentsOf: raw)
        }
        if path.hasSuffix(".gz") {
            do { data = try Gzip.compress(data) } catch { throw .unreadable(path: path, reason: "\(error)") }
        }
        do { try AtomicFile.write(data, to: path) } catch { throw .unreadable(path: path, reason: "cannot write: \(error)") }
    }
}
