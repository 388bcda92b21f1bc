import Core
import Foundation

extension NIfTIVolume {
    /// Decodes a NIfTI-1 file from its (decompressed) bytes as they arrive, in pieces of any
    /// size: the header is checked as soon as its 348 bytes are in (a bad file is refused before
    /// its data is read), then each voxel is converted to Float as it comes. Memory is the
    /// volume's values and at most one voxel's bytes carried between pieces.
    struct Decoder {
        /// What the header says about the data.
        struct Layout {
            var bigEndian: Bool
            var datatype: Int
            var elementSize: Int
            var offset: Int
            var dims: (x: Int, y: Int, z: Int)
            var spacing: (x: Float, y: Float, z: Float)
            var voxels: Int
            var volumes: Int
            var slope: Double
            var intercept: Double
        }

        let path: String
        private var header: [UInt8] = []
        private var layout: Layout?
        /// Bytes consumed so far (the file position of the next byte).
        private var received = 0
        private var values: [Float] = []
        /// Voxels converted so far.
        private var filled = 0
        /// The bytes of a voxel split between two pieces.
        private var carry: [UInt8] = []

        init(path: String) { self.path = path }

        mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(DataError) {
            var p = 0
            if layout == nil {
                let take = min(348 - header.count, bytes.count)
                header.append(contentsOf: bytes[0..<take])
                p = take
                received += take
                guard header.count == 348 else { return }
                let parsed = try Self.parse(header, path: path)
                layout = parsed
                values = [Float](repeating: 0, count: parsed.voxels)
            }
            guard let layout, let base = bytes.baseAddress else { return }
            let size = layout.elementSize
            let dataEnd = layout.offset + layout.voxels * size
            while p < bytes.count {
                let remaining = bytes.count - p
                if received < layout.offset {
                    let skip = min(layout.offset - received, remaining)
                    (p, received) = (p + skip, received + skip)
                    continue
                }
                if received >= dataEnd {
                    // Later volumes of a 4D file: counted for the length check, not converted.
                    received += remaining
                    return
                }
                if !carry.isEmpty || remaining < size {
                    let take = min(size - carry.count, remaining)
                    carry.append(contentsOf: bytes[p..<(p + take)])
                    (p, received) = (p + take, received + take)
                    if carry.count == size {
                        let v = carry.withUnsafeBytes { Self.element($0.baseAddress!, layout) }
                        values[filled] = Float(v * layout.slope + layout.intercept)
                        filled += 1
                        carry.removeAll(keepingCapacity: true)
                    }
                    continue
                }
                let whole = min(remaining / size, layout.voxels - filled)
                values.withUnsafeMutableBufferPointer { out in
                    for i in 0..<whole {
                        let v = Self.element(base + p + i * size, layout)
                        out[filled + i] = Float(v * layout.slope + layout.intercept)
                    }
                }
                filled += whole
                p += whole * size
                received += whole * size
            }
        }

        /// The volume, once every byte is in: checks the data's length and that every voxel is finite.
        mutating func finish() throws(DataError) -> NIfTIVolume {
            guard let layout else {
                throw .invalid(path: path, reason: "file is \(header.count) bytes, shorter than a NIfTI-1 header (348)")
            }
            let needed = layout.voxels * layout.elementSize * layout.volumes
            guard layout.offset + needed <= received else {
                throw .invalid(path: path, reason: "data is truncated: \(received - layout.offset) bytes after the header, \(needed) needed")
            }
            guard values.allSatisfy(\.isFinite) else { throw .invalid(path: path, reason: "volume contains NaN or infinite values") }
            var moved: [Float] = []
            swap(&moved, &values)
            return NIfTIVolume(dims: layout.dims, spacing: layout.spacing, values: moved, header: header, bigEndian: layout.bigEndian,
                               datatype: layout.datatype, extraVolumesDropped: layout.volumes - 1)
        }

        /// One voxel's value from its bytes.
        @inline(__always)
        static func element(_ at: UnsafeRawPointer, _ layout: Layout) -> Double {
            let big = layout.bigEndian
            @inline(__always) func load<T: FixedWidthInteger>(_: T.Type) -> T {
                let raw = at.loadUnaligned(as: T.self)
                return big ? T(bigEndian: raw) : T(littleEndian: raw)
            }
            switch layout.datatype {
            case 2: return Double(at.load(as: UInt8.self))
            case 256: return Double(at.load(as: Int8.self))
            case 4: return Double(load(Int16.self))
            case 512: return Double(load(UInt16.self))
            case 8: return Double(load(Int32.self))
            case 768: return Double(load(UInt32.self))
            case 16: return Double(Float(bitPattern: load(UInt32.self)))
            case 64: return Double(bitPattern: load(UInt64.self))
            case 1024: return Double(load(Int64.self))
            default: return Double(load(UInt64.self))
            }
        }

        /// Checks a 348-byte header: sizeof_hdr in either byte order, magic, dims, datatype,
        /// bitpix, vox_offset and the number of voxels.
        static func parse(_ bytes: [UInt8], path: String) throws(DataError) -> Layout {
            let le = Reader(bytes: bytes, bigEndian: false)
            let big: Bool
            switch le.int32(0) {
            case 348: big = false
            case Int32(348).byteSwapped: big = true
            default:
                if le.int32(0) == 540 || le.int32(0) == Int32(540).byteSwapped {
                    throw .unsupported(path: path, reason: "NIfTI-2 files are not supported (only NIfTI-1)")
                }
                throw .invalid(path: path, reason: "not a NIfTI-1 file (sizeof_hdr is \(le.int32(0)), expected 348)")
            }
            let r = Reader(bytes: bytes, bigEndian: big)
            let magic = Array(bytes[344..<348])
            if magic == Array("ni1\0".utf8) {
                throw .unsupported(path: path, reason: "two-file NIfTI (.hdr/.img) is not supported; convert to .nii")
            }
            guard magic == Array("n+1\0".utf8) else {
                throw .invalid(path: path, reason: "bad magic \(magic.map { String(format: "%02x", $0) }.joined()), expected n+1")
            }
            let ndim = Int(r.int16(40))
            guard (1...7).contains(ndim) else { throw .invalid(path: path, reason: "dim[0] = \(ndim) is not in 1...7") }
            var dim = (1...7).map { Int(r.int16(40 + 2 * $0)) }
            for i in ndim..<7 { dim[i] = 1 }
            guard dim.prefix(ndim).allSatisfy({ $0 > 0 }) else {
                throw .invalid(path: path, reason: "non-positive dimension in \(Array(dim.prefix(ndim)))")
            }
            guard ndim <= 4 || dim[4...].allSatisfy({ $0 == 1 }) else {
                throw .unsupported(path: path, reason: "\(ndim)-D data with more than 4 dimensions")
            }
            let datatype = Int(r.int16(70)), bitpix = Int(r.int16(72))
            guard let size = NIfTIVolume.elementSize(datatype) else {
                throw .unsupported(path: path, reason: "datatype \(datatype) (supported: u/int8, u/int16, u/int32, u/int64, float32, float64)")
            }
            guard bitpix == 8 * size else { throw .invalid(path: path, reason: "bitpix \(bitpix) does not match datatype \(datatype)") }
            let offsetF = r.float32(108)
            guard offsetF.isFinite, offsetF >= 348, offsetF < Float(1 << 30) else {
                throw .invalid(path: path, reason: "vox_offset \(offsetF) is out of range")
            }
            let (nx, ny, nz) = (dim[0], dim[1], dim[2])
            let (plane, o1) = nx.multipliedReportingOverflow(by: ny)
            let (voxels, o2) = plane.multipliedReportingOverflow(by: nz)
            guard !o1, !o2, voxels <= maximumVoxels else {
                throw .invalid(path: path, reason: "volume \(nx)x\(ny)x\(nz) has more than \(maximumVoxels) voxels")
            }
            var slope = r.float32(112), intercept = r.float32(116)
            if slope == 0 || !slope.isFinite { slope = 1; intercept = 0 }
            if !intercept.isFinite { intercept = 0 }
            func pix(_ i: Int) -> Float { let p = abs(r.float32(76 + 4 * i)); return p.isFinite && p > 0 ? p : 1 }
            return Layout(bigEndian: big, datatype: datatype, elementSize: size, offset: Int(offsetF), dims: (nx, ny, nz),
                          spacing: (pix(1), pix(2), pix(3)), voxels: voxels, volumes: dim[3],
                          slope: Double(slope), intercept: Double(intercept))
        }
    }
}
