import Core
import Datasets
import Foundation
import Testing
import TestSupport

/// NIfTI against nibabel, PNG round trips, Decathlon and PNG-folder datasets, bad input.
@Suite struct NIfTITests {
    static let folder = fixturePath("nifti")
    static let files = ["u8.nii", "i8.nii.gz", "u16.nii", "i16_scaled.nii.gz", "i32.nii", "f32.nii.gz",
                        "f64.nii", "i64.nii.gz", "i16_bigendian.nii", "f32_4d.nii.gz"]

    @Test(arguments: files)
    func readsWhatNibabelWrote(_ name: String) throws {
        let expected = try Safetensors.read(path: Self.folder + "/expected.safetensors")
        let v = try NIfTIVolume.read(path: Self.folder + "/" + name)
        #expect(v.dims == (5, 4, 3))
        let e = try expected.require(name, in: "expected")
        #expect(e.shape == [3, 4, 5])
        #expect(zip(v.values, e.values).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }, "values of \(name)")
        #expect(try expected.require(name + ".spacing", in: "expected").values == [v.spacing.x, v.spacing.y, v.spacing.z])
        #expect(v.bigEndian == (name == "i16_bigendian.nii"))
        #expect(v.extraVolumesDropped == (name == "f32_4d.nii.gz" ? 1 : 0))
    }

    @Test func scalingIsApplied() throws {
        let v = try NIfTIVolume.read(path: Self.folder + "/i16_scaled.nii.gz")
        // Stored int16 are multiples of 7; scaled by 2.5 and shifted by -10.
        #expect(v.values.allSatisfy { (($0 + 10) / 2.5).truncatingRemainder(dividingBy: 7) == 0 })
    }

    @Test(arguments: ["u8.nii", "i16_bigendian.nii", "f32.nii.gz"])
    func maskWriterKeepsTheGeometry(_ name: String) throws {
        let tmp = TemporaryFolder()
        let v = try NIfTIVolume.read(path: Self.folder + "/" + name)
        let labels = (0..<60).map { UInt8($0 % 3) }
        let out = tmp.path + "/pred.nii.gz"
        try NIfTIVolume.writeMask(labels, like: v, to: out)
        let back = try NIfTIVolume.read(path: out)
        #expect(back.values == labels.map(Float.init))
        #expect(back.datatype == 2 && back.bigEndian == v.bigEndian)
        #expect(back.spacing == v.spacing)
        // qform/sform and everything geometric (bytes 76...107 pixdim, 252...343 affine) unchanged.
        #expect(back.header[76..<108] == v.header[76..<108])
        #expect(back.header[252..<344] == v.header[252..<344])
    }

    /// Each kind of bad file is a clear error that names the file.
    @Test func badFiles() throws {
        let tmp = TemporaryFolder()
        let good = try Data(contentsOf: URL(fileURLWithPath: Self.folder + "/u8.nii"))
        func expectError(_ data: Data, _ name: String, _ fragment: String) throws {
            let path = try tmp.write(name, data)
            do {
                _ = try NIfTIVolume.read(path: path)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.description.contains(path), "\(error)")
                #expect(error.description.contains(fragment), "\(name): \(error)")
            }
        }
        try expectError(good.prefix(100), "short.nii", "shorter than a NIfTI-1 header")
        try expectError(good.dropLast(10), "truncated.nii", "truncated")
        var magic = good; magic[344] = UInt8(ascii: "x")
        try expectError(magic, "magic.nii", "bad magic")
        var pair = good; pair.replaceSubrange(344..<348, with: Array("ni1\0".utf8))
        try expectError(pair, "pair.nii", "two-file")
        var dtype = good; dtype[70] = 32; dtype[71] = 0
        try expectError(dtype, "complex.nii", "datatype 32")
        var bitpix = good; bitpix[72] = 16
        try expectError(bitpix, "bitpix.nii", "bitpix")
        var dims = good; dims[42] = 0; dims[43] = 0
        try expectError(dims, "dims.nii", "non-positive dimension")
        var size = good; size[0] = 0x1C; size[1] = 0x02
        try expectError(size, "nifti2.nii", "NIfTI-2")
        var offset = good; offset.replaceSubrange(108..<112, with: withUnsafeBytes(of: Float(10).bitPattern.littleEndian) { Array($0) })
        try expectError(offset, "offset.nii", "vox_offset")
        try expectError(Data([0x1F, 0x8B, 1, 2, 3, 4]), "corrupt.nii.gz", "gzip")
        try expectError(good, "plain.nii.gz", "not gzip")
        #expect(throws: DataError.self) { try NIfTIVolume.read(path: tmp.path + "/missing.nii") }
    }
}

/// Reading a file in chunks: voxels split between chunks, gzip members split between them,
/// extensions before the data, and the same values, digest and errors as decoding it whole.
@Suite struct NIfTIStreamingTests {
    /// A float64 volume with 4 bytes of extension (vox_offset 356), larger than one read chunk
    /// (1 MiB), so chunk boundaries fall inside voxels.
    static func file(dims: (Int, Int, Int) = (64, 48, 50)) -> (data: Data, values: [Float]) {
        var header = [UInt8](repeating: 0, count: 348)
        func put<T: FixedWidthInteger>(_ v: T, at: Int) { withUnsafeBytes(of: v.littleEndian) { header.replaceSubrange(at..<(at + $0.count), with: $0) } }
        func putF(_ v: Float, at: Int) { put(v.bitPattern, at: at) }
        put(Int32(348), at: 0)
        for (i, d) in [3, dims.0, dims.1, dims.2, 1, 1, 1, 1].enumerated() { put(Int16(d), at: 40 + 2 * i) }
        put(Int16(64), at: 70); put(Int16(64), at: 72)
        for (i, p) in [Float(1), 0.7, 0.9, 2.5].enumerated() { putF(p, at: 76 + 4 * i) }
        putF(356, at: 108); putF(0.5, at: 112); putF(-3, at: 116)
        header.replaceSubrange(344..<348, with: Array("n+1\0".utf8))
        var data = Data(header)
        data.append(contentsOf: [0, 0, 0, 0, 9, 9, 9, 9])   // extension flag and 4 bytes skipped
        var values: [Float] = []
        for i in 0..<(dims.0 * dims.1 * dims.2) {
            let raw = Double(i % 1013) * 1.25 - 400
            values.append(Float(raw * 0.5 - 3))
            withUnsafeBytes(of: raw.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return (data, values)
    }

    @Test func readsInChunksWhatItDecodesWhole() throws {
        let tmp = TemporaryFolder()
        let (data, values) = Self.file()
        #expect(data.count > 1 << 20)
        // Two gzip members, split inside a voxel, as `cat a.gz b.gz` makes.
        let cut = 700_003
        let members = try Gzip.compress(data.prefix(cut)) + Gzip.compress(data.dropFirst(cut))
        for (name, bytes) in [("plain.nii", data), ("members.nii.gz", members)] {
            let path = try tmp.write(name, bytes)
            let v = try NIfTIVolume.read(path: path)
            #expect(v.dims == (64, 48, 50) && v.spacing == (0.7, 0.9, 2.5))
            #expect(v.values == values, "\(name)")
            #expect(v.fileDigest == SHA256.hex([UInt8](bytes)), "\(name)")
            #expect(try NIfTIVolume.decode(data, path: name).values == values)
            #expect(try NIfTIVolume.readGeometry(path: path).dims == (64, 48, 50))
        }
    }

    @Test func truncationAndTrailingBytes() throws {
        let tmp = TemporaryFolder()
        let (data, values) = Self.file(dims: (20, 20, 10))
        let gz = try Gzip.compress(data)
        // A gzip stream cut short, and a file whose data ends early, are refused.
        for (name, bytes, fragment) in [("cut.nii.gz", gz.prefix(gz.count / 2), "truncated gzip"),
                                        ("short-data.nii.gz", try Gzip.compress(data.dropLast(9)), "data is truncated")] {
            let path = try tmp.write(name, Data(bytes))
            #expect { try NIfTIVolume.read(path: path) } throws: { "\($0)".contains(fragment) && "\($0)".contains(path) }
        }
        // Bytes after the last member that start no other are ignored, as gzip does.
        let path = try tmp.write("trailing.nii.gz", gz + Data([0, 0, 0, 7]))
        #expect(try NIfTIVolume.read(path: path).values == values)
    }

    @Test func compressingInPartsRoundTrips() throws {
        let a = Data((0..<300_000).map { UInt8($0 % 251) }), b = Data(repeating: 3, count: 1_000_003)
        let whole = try a.withUnsafeBytes { x in try b.withUnsafeBytes { y in try Gzip.compress([x, y]) } }
        #expect(try Gzip.decompress(whole, limit: 1 << 30) == a + b)
        #expect(try Gzip.decompress(Gzip.compress(Data()), limit: 10) == Data())
    }
}

@Suite struct PNGTests {
    @Test func roundTrips() throws {
        let gray: [UInt8] = (0..<(7 * 5)).map { UInt8($0 * 7) }
        let g = try PNG.decode(PNG.encode(width: 7, height: 5, channels: 1, pixels: gray))
        #expect(g.bitDepth == 8 && g.width == 7 && g.height == 5 && g.samples == gray.map(UInt16.init))
        let deep: [UInt16] = (0..<(6 * 4)).map { UInt16($0 * 2731) }
        let d = try PNG.decode(PNG.encode16(width: 6, height: 4, samples: deep))
        #expect(d.bitDepth == 16 && d.samples == deep)
        let rgb = try PNG.decode(PNG.encode(width: 2, height: 1, channels: 3, pixels: [255, 255, 255, 0, 0, 0]))
        #expect(rgb.wasColor && rgb.samples == [255, 0])
    }

    @Test func readsAnIndependentlyEncoded16BitFile() throws {
        let folder = fixturePath("pngtasks")
        let png = try PNG.read(path: folder + "/reference16.png.bin")
        let expected = try Safetensors.read(path: folder + "/reference16.safetensors").require("reference16", in: "fixture")
        #expect(png.bitDepth == 16 && png.width == 24 && png.height == 20)
        #expect(png.samples.map(Float.init) == expected.values)
    }

    @Test func badPNGs() {
        #expect(throws: DataError.self) { try PNG.decode(Data([1, 2, 3])) }
        var bytes = [UInt8](try! PNG.encode(width: 4, height: 4, channels: 1, pixels: [UInt8](repeating: 9, count: 16)))
        // Damage the compressed image data (a critical chunk) just after the IDAT tag.
        let idat = (0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)] == [73, 68, 65, 84] }!
        bytes[idat + 6] ^= 0xFF
        #expect(throws: DataError.self) { try PNG.decode(Data(bytes)) }
        #expect(throws: DataError.self) { try PNG.decode(Data(bytes.prefix(40))) }
    }
}

@Suite struct VolumeDatasetTests {
    static let v1 = fixturePath("decathlon/Task99_Mini"), v2 = fixturePath("decathlon/Dataset098_MiniV2")

    static func options(_ edit: (inout VolumeOptions) -> Void = { _ in }) -> VolumeOptions {
        var o = VolumeOptions()
        o.size = 32
        edit(&o)
        return o
    }

    @Test(arguments: [v1, v2])
    func everyForegroundLabelIsATask(_ root: String) throws {
        let d = try DecathlonDataset(root: root, options: Self.options(), logger: testLogger)
        let base = URL(fileURLWithPath: root).lastPathComponent
        #expect(d.taskNames == ["\(base)/label-1/axial", "\(base)/label-2/axial"])
        let s = try d.sample(task: 1, index: 3, seed: 1, support: 2, query: 1)
        try s.validate()
        // Every sampled slice contains the label, and images are normalised volumes.
        for b in 0..<3 {
            let m = (s.supportMasks + s.queryMasks)[(b * 1024)..<((b + 1) * 1024)]
            #expect(m.contains(1))
        }
    }

    @Test func samplesComeFromOneVolumeAndAreDeterministic() throws {
        let d = try DecathlonDataset(root: Self.v1, options: Self.options(), logger: testLogger)
        let a = try d.sample(task: 0, index: 7, seed: 4, support: 3, query: 2)
        #expect(a == (try d.sample(task: 0, index: 7, seed: 4, support: 3, query: 2)))
        #expect(a != (try d.sample(task: 0, index: 8, seed: 4, support: 3, query: 2)))
        // Too many shots for any volume or the whole task is a clear error.
        #expect(throws: DataError.self) { try d.sample(task: 1, index: 0, seed: 0, support: 8, query: 8) }
    }

    @Test(arguments: SliceAxis.allCases)
    func axesAndAugmentation(_ axis: SliceAxis) throws {
        let d = try DecathlonDataset(root: Self.v1, options: Self.options { $0.axis = axis; $0.augment = true }, logger: testLogger)
        #expect(d.taskNames[0].hasSuffix("/" + axis.rawValue))
        let s = try d.sample(task: 0, index: 0, seed: 0, support: 2, query: 1)
        try s.validate()
        #expect(s == (try d.sample(task: 0, index: 0, seed: 0, support: 2, query: 1)))
    }

    @Test func fingerprintChangesWithTheData() throws {
        let tmp = TemporaryFolder()
        let root = try tmp.copy(Self.v1)
        let a = try DecathlonDataset(root: root, options: Self.options(), logger: testLogger).identity
        #expect(a == (try DecathlonDataset(root: root, options: Self.options(), logger: testLogger).identity))
        let b = try DecathlonDataset(root: root, options: Self.options { $0.axis = .coronal }, logger: testLogger).identity
        #expect(a.fingerprint != b.fingerprint)
        try FileManager.default.copyItem(atPath: root + "/labelsTr/mini_000.nii.gz", toPath: root + "/x")
        try FileManager.default.removeItem(atPath: root + "/labelsTr/mini_000.nii.gz")
        try FileManager.default.copyItem(atPath: root + "/labelsTr/mini_001.nii.gz", toPath: root + "/labelsTr/mini_000.nii.gz")
        #expect(a.fingerprint != (try DecathlonDataset(root: root, options: Self.options(), logger: testLogger).identity.fingerprint))
    }

    /// Broken datasets fail with the file and the reason, or are skipped with a warning.
    @Test func badDatasets() throws {
        let tmp = TemporaryFolder()
        func broken(_ name: String, _ damage: (String) throws -> Void) throws -> String {
            let root = try tmp.copy(Self.v1, as: name)
            try damage(root)
            return root
        }
        func expectError(_ root: String, _ fragment: String) {
            do {
                _ = try DecathlonDataset(root: root, options: Self.options(), logger: testLogger)
                Issue.record("\(root) was accepted")
            } catch {
                #expect(error.description.contains(fragment), "\(error)")
            }
        }
        let fm = FileManager.default
        // An image whose shape differs from its label.
        let mismatch = try broken("mismatch") { root in
            try fm.removeItem(atPath: root + "/imagesTr/mini_001.nii.gz")
            try fm.copyItem(atPath: fixturePath("nifti/f32.nii.gz"), toPath: root + "/imagesTr/mini_001.nii.gz")
        }
        expectError(mismatch, "differs from image size")
        // A missing label file.
        let missing = try broken("missing") { try fm.removeItem(atPath: $0 + "/labelsTr/mini_002.nii.gz") }
        expectError(missing, "mini_002.nii.gz")
        // A truncated (corrupt) file.
        let corrupt = try broken("corrupt") { root in
            let p = root + "/imagesTr/mini_000.nii.gz"
            let d = try Data(contentsOf: URL(fileURLWithPath: p))
            try d.prefix(d.count / 2).write(to: URL(fileURLWithPath: p))
        }
        expectError(corrupt, "mini_000.nii.gz")
        // Labels not declared in dataset.json, and non-integer labels.
        let undeclared = try broken("undeclared") { root in
            let p = root + "/dataset.json"
            let s = try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: "\"2\": \"lesion\"", with: "\"3\": \"lesion\"")
            try s.write(toFile: p, atomically: true, encoding: .utf8)
        }
        expectError(undeclared, "not declared")
        let fractional = try broken("fractional") { root in
            try fm.removeItem(atPath: root + "/labelsTr/mini_000.nii.gz")
            try fm.copyItem(atPath: root + "/imagesTr/mini_000.nii.gz", toPath: root + "/labelsTr/mini_000.nii.gz")
        }
        expectError(fractional, "label value")
        // No dataset.json labels, and an empty task.
        let nolabels = try broken("nolabels") { try "{\"training\": []}".write(toFile: $0 + "/dataset.json", atomically: true, encoding: .utf8) }
        expectError(nolabels, "missing \"labels\"")
        let empty = try broken("empty") { root in
            let p = root + "/dataset.json"
            let s = try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: "\"2\": \"lesion\"", with: "\"2\": \"lesion\", \"7\": \"ghost\"")
            try s.write(toFile: p, atomically: true, encoding: .utf8)
        }
        expectError(empty, "appears in no slice")
        // With skipBad the bad case is skipped and the rest loads.
        let skipped = try DecathlonDataset(root: corrupt, options: Self.options { $0.skipBad = true }, logger: testLogger)
        #expect(skipped.warnings.contains { $0.contains("mini_000") })
        #expect(skipped.caseSummaries.count == 2)
        let dropped = try DecathlonDataset(root: empty, options: Self.options { $0.skipBad = true }, logger: testLogger)
        #expect(dropped.taskNames.count == 2)
    }
}

@Suite struct PNGFolderTests {
    @Test func loadsTasksFrom8And16BitFolders() throws {
        var o = VolumeOptions()
        o.size = 16
        let d = try PNGFolderDataset(root: fixturePath("pngtasks"), options: o, logger: testLogger)
        #expect(d.taskNames == ["pngtasks/discs16", "pngtasks/discs8"])
        let s = try d.sample(task: 0, index: 1, seed: 2, support: 2, query: 2)
        try s.validate()
        #expect(s.shape == FeatureShape(channels: 1, height: 16, width: 16))
        #expect(s.supportMasks.contains(1))
        #expect(throws: DataError.self) { try d.sample(task: 0, index: 0, seed: 0, support: 3, query: 2) }
    }

    @Test func missingOrMismatchedMasksAreErrors() throws {
        let tmp = TemporaryFolder()
        let root = try tmp.copy(fixturePath("pngtasks"))
        try FileManager.default.removeItem(atPath: root + "/discs8/masks/im1.png")
        #expect(throws: DataError.self) { try PNGFolderDataset(root: root, logger: testLogger) }
        var o = VolumeOptions()
        o.skipBad = true
        let d = try PNGFolderDataset(root: root, options: o, logger: testLogger)
        #expect(d.warnings.contains { $0.contains("im1.png") })
        let big = try PNG.encode(width: 5, height: 5, channels: 1, pixels: [UInt8](repeating: 255, count: 25))
        try big.write(to: URL(fileURLWithPath: root + "/discs16/masks/im0.png"))
        do {
            _ = try PNGFolderDataset(root: root, logger: testLogger)
            Issue.record("a mismatched mask was accepted")
        } catch {
            #expect(error.description.contains("im1.png") || error.description.contains("im0.png"))
        }
        #expect(throws: DataError.self) { try PNGFolderDataset(root: tmp.path + "/nothing", logger: testLogger) }
    }
}
