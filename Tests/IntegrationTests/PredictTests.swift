import Core
import Datasets
import Foundation
import Testing
import TestSupport

/// `predict` through the real executable: a folder in, NIfTI label maps out on each input's
/// own grid and header, scores against a reference, a report a browser shows; and every kind
/// of bad input refused with the file named and nothing written.
@Suite(.serialized) struct PredictTests {
    let folder = TemporaryFolder()
    static let mini = fixturePath("decathlon/Task99_Mini")

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// A tiny model trained on the fixture's volumes (spacing-aware patches of 16 px).
    func model() throws -> String {
        let dir = folder.path + "/model"
        if FileManager.default.fileExists(atPath: dir + "/final.safetensors") { return dir + "/final.safetensors" }
        let p = try coordinator(["train", "--dataset", Self.mini, "--image-size", "16", "--base-channels", "4", "--outer-steps", "3",
                                 "--meta-batch", "2", "--shots", "2", "--query", "1", "--in-process", "--checkpoint-dir", dir], name: "model")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        return dir + "/final.safetensors"
    }

    /// A folder of cases named as nnU-Net names its inputs.
    func inputs(_ cases: [Int], name: String) throws -> String {
        let dir = folder.path + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for i in cases {
            try FileManager.default.copyItem(atPath: String(format: "%@/imagesTr/mini_%03d.nii.gz", Self.mini, i),
                                             toPath: String(format: "%@/mini_%03d_0000.nii.gz", dir, i))
        }
        return dir
    }

    func predict(_ extra: [String], input: String, output: String, name: String, support: [(String, String)]? = nil) throws -> ChildProcess {
        let pairs = support ?? [(Self.mini + "/imagesTr/mini_000.nii.gz", Self.mini + "/labelsTr/mini_000.nii.gz")]
        let args = ["predict", "--checkpoint", try model(), "-i", input, "-o", output, "--shots", "2", "--steps", "3", "--adam-rate", "0.01",
                    "--threads", "1"] + pairs.flatMap { ["--support", $0.0, "--support-masks", $0.1] } + extra
        return try coordinator(args, name: name)
    }

    /// The NIfTI files in a folder.
    func written(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".nii.gz") || $0.hasSuffix(".nii") }
    }

    @Test func aFolderInLabelMapsOutOnEachInputsGrid() throws {
        let input = try inputs([1, 2], name: "cases")
        let output = folder.path + "/out"
        let p = try predict(["--label", "1", "--label", "2", "--reference", Self.mini + "/labelsTr", "--save-adapted", folder.path + "/adapted.safetensors"],
                            input: input, output: output, name: "predict")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        #expect(p.stderr.contains("case 2/2"))
        #expect(written(output).sorted() == ["mini_001.nii.gz", "mini_002.nii.gz"])
        for i in [1, 2] {
            let original = try NIfTIVolume.read(path: String(format: "%@/mini_%03d_0000.nii.gz", input, i))
            let predicted = try NIfTIVolume.read(path: String(format: "%@/mini_%03d.nii.gz", output, i))
            #expect(predicted.dims == original.dims)
            #expect(predicted.spacing == original.spacing)
            #expect(Set(predicted.values).isSubset(of: [0, 1, 2]))
        }
        let report = try String(contentsOfFile: output + "/predictions.json", encoding: .utf8)
        #expect(report.contains("\"dice\"") && report.contains("mini_002.nii.gz"))
        #expect(try String(contentsOfFile: output + "/index.html", encoding: .utf8).contains("overlays/"))
        // The saved adaptation gives the same label maps without adapting again.
        let again = try predict(["--adapted", folder.path + "/adapted.safetensors"], input: input, output: folder.path + "/again",
                                name: "predict-again", support: [])
        #expect(again.waitExit() == 0, "\(again.stderr)")
        for file in written(output) {
            #expect(try NIfTIVolume.read(path: output + "/" + file).values == NIfTIVolume.read(path: folder.path + "/again/" + file).values)
        }
        if let browser = BrowserCheck.browser {
            let check = try BrowserCheck.check(output + "/index.html", browser: browser)
            #expect(check.images == 2 && check.broken.isEmpty, "\(check)")
        }
    }

    /// A model saved before spacing-aware data (`checkpoints/before-spacing.safetensors`:
    /// trained on this fixture by commit 7429d9a, 16 px, whole slices squashed) still adapts
    /// and predicts, its slices squashed as it was trained, the label map on the input's grid.
    @Test func aCheckpointFromBeforeSpacingAwareDataStillAdaptsAndPredicts() throws {
        let old = fixturePath("checkpoints/before-spacing.safetensors")
        let input = try inputs([1], name: "old-cases")
        let support = ["--support", Self.mini + "/imagesTr/mini_000.nii.gz", "--support-masks", Self.mini + "/labelsTr/mini_000.nii.gz"]
        let p = try coordinator(["predict", "--checkpoint", old, "-i", input, "-o", folder.path + "/old-out", "--label", "1", "--shots", "2",
                                 "--steps", "3", "--adam-rate", "0.01", "--threads", "1"] + support, name: "old-predict")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        let original = try NIfTIVolume.read(path: input + "/mini_001_0000.nii.gz")
        let predicted = try NIfTIVolume.read(path: folder.path + "/old-out/mini_001.nii.gz")
        #expect(predicted.dims == original.dims && predicted.spacing == original.spacing)
        let a = try coordinator(["adapt", "--checkpoint", old, "--images", Self.mini + "/imagesTr/mini_001.nii.gz",
                                 "--masks", Self.mini + "/labelsTr/mini_001.nii.gz", "--label", "1", "--shots", "2", "--steps", "3",
                                 "--out", folder.path + "/old-adapt"] + support, name: "old-adapt")
        #expect(a.waitExit() == 0, "\(a.stderr)")
        #expect(a.stdout.contains("dice"), "\(a.stdout)")
    }

    /// Writes `values` as an uncompressed float32 NIfTI with mini_000's header and geometry.
    func volume(_ values: [Float], dims: (Int, Int, Int), name: String) throws -> String {
        let like = try NIfTIVolume.read(path: Self.mini + "/imagesTr/mini_000.nii.gz")
        let path = folder.path + "/" + name
        try NIfTIVolume.writeVolume(values, dims: dims, like: like, datatype: 16, to: path)
        return path
    }

    /// Every bad input is refused before anything is written, naming the file at fault.
    @Test func badInputIsRefusedNamingTheFileAndNothingIsWritten() throws {
        let like = try NIfTIVolume.read(path: Self.mini + "/imagesTr/mini_000.nii.gz")
        let (x, y, z) = like.dims
        let good = try inputs([1], name: "good")
        // A second case with a NaN voxel: the first case is not written either.
        let nanCase = try inputs([1], name: "nan-case")
        var poisoned = like.values
        poisoned[poisoned.count / 2] = .nan
        try FileManager.default.moveItem(atPath: try volume(poisoned, dims: like.dims, name: "nan.nii"), toPath: nanCase + "/zz_nan_0000.nii")
        // A 4D volume: mini_000 with dim[0] = 4 and two time points.
        var raw = try Data(contentsOf: URL(fileURLWithPath: try volume(like.values, dims: like.dims, name: "3d.nii")))
        raw[40] = 4; raw[41] = 0
        raw[48] = 2; raw[49] = 0
        raw.append(raw[352...])
        let fourD = try inputs([], name: "four-d")
        try raw.write(to: URL(fileURLWithPath: fourD + "/vol4d_0000.nii"))
        // A label map on another grid than its image.
        let cropped = folder.path + "/cropped-labels.nii"
        try NIfTIVolume.writeVolume(Array(like.values.prefix(x * y * (z - 1))).map { _ in 0 }, dims: (x, y, z - 1), like: like,
                                    datatype: 2, to: cropped)
        // A support label map with no voxel of the label.
        let empty = try volume([Float](repeating: 0, count: x * y * z), dims: like.dims, name: "empty-labels.nii")
        let emptyFolder = try inputs([], name: "no-cases")
        let image = Self.mini + "/imagesTr/mini_000.nii.gz"
        let cases: [(String, [String], String, [(String, String)]?, [String])] = [
            ("nan", ["--label", "1"], nanCase, nil, ["zz_nan_0000.nii", "NaN"]),
            ("4d", ["--label", "1"], fourD, nil, ["vol4d_0000.nii"]),
            ("grids", ["--label", "1"], good, [(image, cropped)], ["cropped-labels.nii"]),
            ("empty-label", ["--label", "1"], good, [(image, empty)], ["label 1", "empty-labels.nii"]),
            ("missing-label", ["--label", "7"], good, nil, ["label 7"]),
            ("no-cases", ["--label", "1"], emptyFolder, nil, ["no-cases", "no .nii"]),
        ]
        for (name, flags, input, support, mentions) in cases {
            let output = folder.path + "/out-" + name
            let p = try predict(flags, input: input, output: output, name: "bad-" + name, support: support)
            let status = p.waitExit()
            #expect(status != nil && status != 0, "\(name): \(p.stderr.suffix(800))")
            for m in mentions { #expect(p.stderr.contains(m), "\(name): expected \(m) in \(p.stderr.suffix(800))") }
            #expect(written(output).isEmpty, "\(name): \(written(output))")
            #expect(!p.stderr.contains("Fatal error"), "\(name)")
        }
    }
}
