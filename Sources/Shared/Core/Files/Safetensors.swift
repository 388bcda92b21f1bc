import Foundation

/// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
/// an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional string map under
/// `__metadata__`), then the raw little-endian data. MedMAML writes Float32 (and Float64 for
/// tensors that carry `float64` values) and reads F32, F64, F16 and BF16 (converted to
/// Float32; F64 tensors keep their Float64 values too), so tensors move to and from PyTorch
/// unchanged.
public enum Safetensors {
    /// One named tensor, held as Float32; a Float64 tensor also keeps its exact values in
    /// `float64` (read from an F64 tensor, or written as one).
    public struct Tensor: Equatable, Sendable {
        public var shape: [Int]
        public var values: [Float]
        public var float64: [Double]?

        public init(shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "shape does not match the value count")
            self.shape = shape
            self.values = values
        }

        /// A Float64 tensor (written as F64).
        public init(shape: [Int], float64: [Double]) {
            precondition(shape.reduce(1, *) == float64.count, "shape does not match the value count")
            self.shape = shape
            self.values = float64.map { Float($0) }
            self.float64 = float64
        }

        /// The values in Float64: exact for F64 tensors, widened from Float32 otherwise.
        public var doubles: [Double] { float64 ?? values.map { Double($0) } }
    }

    /// A whole file: tensors in file order, and metadata.
    public struct File: Sendable {
        public var tensors: [(name: String, tensor: Tensor)]
        public var metadata: [String: String]

        public init(tensors: [(name: String, tensor: Tensor)] = [], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }

        public subscript(name: String) -> Tensor? {
            tensors.first { $0.name == name }?.tensor
        }

        /// The tensor `name`, or a `SafetensorsError.missing` naming the file.
        public func require(_ name: String, in path: String) throws(SafetensorsError) -> Tensor {
            guard let t = self[name] else { throw .missing(path: path, name: name) }
            return t
        }
    }

    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    // MARK: Reading

    public static func read(path: String) throws(SafetensorsError) -> File {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path)
        }
        return try decode(data, path: path)
    }

    /// Parses a safetensors image held in memory; `path` only labels errors.
    public static func decode(_ data: Data, path: String = "<memory>") throws(SafetensorsError) -> File {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw .corrupt(path: path, reason: "file is shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(maximumHeaderSize), n >= 2 else {
            throw .corrupt(path: path, reason: "header length \(n) is out of range")
        }
        let headerEnd = 8 + Int(n)
        guard headerEnd <= bytes.count else {
            throw .corrupt(path: path, reason: "header length \(n) runs past the end of the file (\(bytes.count) bytes)")
        }
        guard bytes[8] == UInt8(ascii: "{") else {
            throw .corrupt(path: path, reason: "header does not start with '{'")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd]))
        } catch {
            throw .corrupt(path: path, reason: "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw .corrupt(path: path, reason: "header is not a JSON object")
        }
        let dataCount = bytes.count - headerEnd
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw .corrupt(path: path, reason: "__metadata__ is not an object")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw .corrupt(path: path, reason: "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any], let offsetsAny = info["data_offsets"] as? [Any],
                  offsetsAny.count == 2
            else { throw .corrupt(path: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets") }
            let shape = try shapeAny.map { (d: Any) throws(SafetensorsError) -> Int in
                guard let i = exactInt(d), i >= 0, i <= 1 << 40 else {
                    throw .corrupt(path: path, reason: "tensor '\(name)' has an invalid shape")
                }
                return i
            }
            guard let begin = exactInt(offsetsAny[0]), let end = exactInt(offsetsAny[1]),
                  begin >= 0, end >= begin, end <= dataCount
            else {
                throw .corrupt(path: path, reason: "tensor '\(name)' has data offsets outside the data (\(dataCount) bytes)")
            }
            guard let width = elementSize(dtype) else { throw .unsupportedType(path: path, name: name, dtype: dtype) }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, product <= 1 << 40 else {
                    throw .corrupt(path: path, reason: "tensor '\(name)' is too large")
                }
                count = product
            }
            guard count * width == end - begin else {
                throw .corrupt(path: path, reason: "tensor '\(name)': shape \(shape) of \(dtype) needs \(count * width) bytes, offsets give \(end - begin)")
            }
            entries.append((name, dtype, shape, begin, end))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for e in entries {
            guard e.begin >= cursor else { throw .corrupt(path: path, reason: "tensor '\(e.name)' overlaps another tensor") }
            guard e.begin == cursor else { throw .corrupt(path: path, reason: "the data has a hole before tensor '\(e.name)'") }
            cursor = e.end
        }
        guard cursor == dataCount else {
            throw .corrupt(path: path, reason: "\(dataCount - cursor) bytes of data are not covered by any tensor")
        }
        var tensors: [(name: String, tensor: Tensor)] = []
        for e in entries {
            if e.dtype == "F64" {
                let doubles = bytes.withUnsafeBufferPointer { buf in
                    let raw = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buf)[(headerEnd + e.begin)..<(headerEnd + e.end)])
                    return (0..<(raw.count / 8)).map { Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian) }
                }
                tensors.append((e.name, Tensor(shape: e.shape, float64: doubles)))
                continue
            }
            let values = bytes.withUnsafeBufferPointer { buf in
                convert(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buf)[(headerEnd + e.begin)..<(headerEnd + e.end)]), dtype: e.dtype)
            }
            tensors.append((e.name, Tensor(shape: e.shape, values: values)))
        }
        return File(tensors: tensors, metadata: metadata)
    }

    private static func exactInt(_ any: Any) -> Int? {
        if let n = any as? NSNumber {
            let d = n.doubleValue
            guard d.isFinite, d == d.rounded(), abs(d) < 0x1p53 else { return nil }
            return Int(d)
        }
        return nil
    }

    private static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32": 4
        case "F64": 8
        case "F16", "BF16": 2
        default: nil
        }
    }

    private static func convert(_ raw: UnsafeRawBufferPointer, dtype: String) -> [Float] {
        switch dtype {
        case "F32":
            return (0..<(raw.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) }
        case "F64":
            return (0..<(raw.count / 8)).map { Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian)) }
        case "BF16":
            return (0..<(raw.count / 2)).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) << 16) }
        default:  // F16
            return (0..<(raw.count / 2)).map { halfToFloat(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) }
        }
    }

    private static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = h & 0x8000 != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F), mantissa = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * 0x1p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    // MARK: Writing

    /// Serialises tensors (in the given order) and metadata.
    public static func encode(_ file: File) -> Data {
        var header = "{"
        var offset = 0
        var parts: [String] = []
        if !file.metadata.isEmpty {
            let pairs = file.metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(file.metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        for (name, tensor) in file.tensors {
            let wide = tensor.float64 != nil
            let bytes = tensor.values.count * (wide ? 8 : 4)
            parts.append("\(jsonString(name)):{\"dtype\":\"\(wide ? "F64" : "F32")\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += parts.joined(separator: ",") + "}"
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        var data = Data(capacity: 8 + header.utf8.count + offset)
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for (_, tensor) in file.tensors {
            if let wide = tensor.float64 {
                for v in wide { var b = v.bitPattern.littleEndian; withUnsafeBytes(of: &b) { data.append(contentsOf: $0) } }
                continue
            }
            tensor.values.withUnsafeBufferPointer { buf in
                #if _endian(little)
                data.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: UInt8.self), count: buf.count * 4))
                #else
                for v in buf { var b = v.bitPattern.littleEndian; withUnsafeBytes(of: &b) { data.append(contentsOf: $0) } }
                #endif
            }
        }
        return data
    }

    /// Writes atomically: a temporary file in the same folder, fsync, then rename.
    public static func write(_ file: File, to path: String) throws(SafetensorsError) {
        do {
            try AtomicFile.write(encode(file), to: path)
        } catch {
            throw .unwritable(path: path, reason: "\(error)")
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
