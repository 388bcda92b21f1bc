import Core
import Foundation
import Testing
import TestSupport

@Suite struct SafetensorsTests {
    static func header(_ json: String, data: [UInt8] = []) -> Data {
        var d = Data()
        var n = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(json.utf8))
        d.append(contentsOf: data)
        return d
    }

    @Test func roundTripKeepsNamesShapesValuesAndMetadata() throws {
        let file = Safetensors.File(
            tensors: [("b.weight", .init(shape: [2, 3], values: [1, -2, 3.5, .pi, 0, -0])),
                      ("a", .init(shape: [1], values: [42])),
                      ("empty", .init(shape: [0, 4], values: []))],
            metadata: ["step": "7", "quote\"d": "line\nbreak"])
        let decoded = try Safetensors.decode(Safetensors.encode(file))
        #expect(decoded.tensors.map(\.name) == ["b.weight", "a", "empty"])
        #expect(decoded["b.weight"] == file["b.weight"])
        #expect(decoded["a"]?.values == [42])
        #expect(decoded["empty"]?.shape == [0, 4])
        #expect(decoded.metadata == file.metadata)
    }

    @Test func readsWhatPyTorchWrote() throws {
        let file = try Safetensors.read(path: fixturePath("engine_w1.safetensors"))
        #expect(file["images"]?.shape == [2, 1, 32, 32])
        #expect(file["grad.head.bias"]?.shape == [1])
        #expect(file.metadata["generator"] == "Tests/Reference/make_engine_fixtures.py")
    }

    @Test func convertsOtherFloatTypes() throws {
        // F64 2.5, F16 -1.5 (0xBE00), BF16 3.0 (0x4040)
        var bytes: [UInt8] = []
        withUnsafeBytes(of: Double(2.5).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        bytes += [0x00, 0xBE, 0x40, 0x40]
        let json = #"{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[10,12]}}"#
        let f = try Safetensors.decode(Self.header(json, data: bytes))
        #expect(f["d"]?.values == [2.5])
        #expect(f["h"]?.values == [-1.5])
        #expect(f["b"]?.values == [3.0])
    }

    @Test func float64TensorsRoundTripExactly() throws {
        // Values a float32 cannot hold: they must come back bit for bit.
        let values: [Double] = [1.0 / 3.0, -2.0e-300, 1e300, .pi, 0.1 + 0.2, -0.0]
        let file = Safetensors.File(tensors: [("w", .init(shape: [2, 3], float64: values)), ("f", .init(shape: [1], values: [0.5]))],
                                    metadata: ["precision": "float64"])
        let back = try Safetensors.decode(Safetensors.encode(file))
        #expect(back["w"]?.shape == [2, 3])
        #expect(back["w"]?.doubles.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(back["w"]?.values == values.map { Float($0) })
        #expect(back["f"]?.float64 == nil && back["f"]?.doubles == [0.5])
        #expect(back.metadata["precision"] == "float64")
    }

    /// Each malformed file gives a `corrupt` or `unsupportedType` error, never a crash.
    @Test(arguments: [
        ("truncated header length", Data([1, 2, 3])),
        ("header length past end", header("{}").dropLast(1)),
        ("huge header length", Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x7B])),
        ("not json", header("{nope")),
        ("json array", header("[1,2]")),
        ("missing offsets", header(#"{"a":{"dtype":"F32","shape":[1]}}"#, data: [0, 0, 0, 0])),
        ("offsets out of range", header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])),
        ("shape/offset mismatch", header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
        ("negative dimension", header(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
        ("overlap", header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
        ("hole", header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0])),
        ("trailing bytes", header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0, 9])),
        ("bad metadata", header(#"{"__metadata__":{"k":1}}"#)),
        ("overflowing shape", header(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])),
    ])
    func rejectsMalformedFiles(_ c: (String, Data)) {
        #expect(throws: SafetensorsError.self, "\(c.0)") { try Safetensors.decode(c.1, path: "x.safetensors") }
    }

    @Test func unsupportedDtypeIsNamed() {
        let d = Self.header(#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        #expect(throws: SafetensorsError.unsupportedType(path: "x", name: "a", dtype: "I64")) {
            try Safetensors.decode(d, path: "x")
        }
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: SafetensorsError.unreadable(path: "/nonexistent/p.safetensors")) {
            try Safetensors.read(path: "/nonexistent/p.safetensors")
        }
    }

    @Test func atomicWriteReplacesTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.safetensors"
        try Safetensors.write(.init(tensors: [("x", .init(shape: [1], values: [1]))]), to: path)
        try Safetensors.write(.init(tensors: [("x", .init(shape: [2], values: [2, 3]))]), to: path)
        #expect(try Safetensors.read(path: path)["x"]?.values == [2, 3])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["p.safetensors"])
    }
}
