import Datasets
import Foundation
import Testing
import TestSupport
import Training

/// The main job and the meta-test commands, end to end through the real executables.
@Suite(.serialized) struct PipelineTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// A miniature demo (tiny model, few steps) through the same code path as the real one:
    /// every output file is there and well formed.
    @Test func miniatureDemoWritesEveryOutput() throws {
        let out = folder.path + "/demo"
        let p = try coordinator(["demo", "--out", out, "--steps", "4", "--meta-batch", "2", "--image-size", "32",
                                 "--base-channels", "4", "--instances-per-task", "1", "--eval-every", "2",
                                 "--fine-tune-steps", "2", "--local-workers", "1"], name: "demo")
        #expect(p.waitExit(timeout: 300) == 0, "\(p.stderr.suffix(3000))")
        #expect(p.stdout.contains("maml_second") && p.stdout.contains("transfer"))
        // results.json: the four methods with mean, CI and instance count.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as! [String: Any]
        let methods = try #require(json["methods"] as? [String: [String: Any]])
        #expect(Set(methods.keys) == ["maml_second", "maml_first", "scratch", "transfer"])
        for (_, m) in methods {
            let dice = try #require(m["dice_mean"] as? Double)
            #expect((0...1).contains(dice))
            #expect(m["dice_ci95"] is Double)
            #expect(m["instances"] as? Int == 8)
        }
        // Pictures decode; metrics.jsonl parses line by line; the checkpoint loads.
        for png in ["training_curves.png", "adaptation.png"] {
            let g = try PNG.read(path: out + "/" + png)
            #expect(g.width > 100 && g.height > 100, "\(png)")
        }
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        for line in lines {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(obj["meta_loss"] is Double && obj["step"] != nil)
        }
        #expect(lines.contains { $0.contains("heldout_dice") })
        let model = try TrainedModel.load(out + "/final.safetensors")
        #expect(model.config.order == .second && model.meta.allSatisfy(\.isFinite))
        #expect(p.stderr.contains("ETA"))
    }

    /// Trains a tiny model on PNG-sized images for the commands below.
    func tinyModel(size: Int) throws -> String {
        let dir = folder.path + "/tiny-\(size)"
        let p = try coordinator(["train", "--image-size", "\(size)", "--base-channels", "4", "--steps", "3", "--meta-batch", "2",
                                 "--support", "2", "--query", "1", "--in-process", "--checkpoint-dir", dir], name: "tiny-\(size)")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        return dir + "/final.safetensors"
    }

    @Test func evaluateOnADecathlonDatasetWithBaselines() throws {
        let model = try tinyModel(size: 32)
        let out = folder.path + "/eval.json"
        let p = try coordinator(["evaluate", "--checkpoint", model, "--dataset", fixturePath("decathlon/Task99_Mini"),
                                 "--tasks", "*label-1*", "--shots", "2", "--query", "1", "--instances-per-task", "3",
                                 "--baselines", "--transfer-steps", "2", "--fine-tune-steps", "2", "--out", out], name: "evaluate")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        #expect(p.stdout.contains("maml") && p.stdout.contains("scratch") && p.stdout.contains("transfer"))
        #expect(p.stdout.contains("HD95 (mm)"), "voxel size known: HD95 in mm\n\(p.stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        #expect((json["methods"] as? [String: Any])?.count == 3)
    }

    @Test func adaptPNGsWritesMasksAtTheImagesOwnSize() throws {
        let model = try tinyModel(size: 16)
        let tasks = fixturePath("pngtasks")
        let out = folder.path + "/adapt-png"
        let p = try coordinator(["adapt", "--checkpoint", model, "--support", tasks + "/discs8/images",
                                 "--support-masks", tasks + "/discs8/masks", "--images", tasks + "/discs16/images",
                                 "--masks", tasks + "/discs16/masks", "--out", out, "--shots", "3"], name: "adapt-png")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        #expect(p.stdout.contains("dice "))
        for i in 0..<4 {
            let m = try PNG.read(path: out + "/masks/im\(i).png")
            #expect(m.width == 24 && m.height == 20)
            #expect(m.samples.allSatisfy { $0 == 0 || $0 == 255 })
            #expect(try PNG.read(path: out + "/overlays/im\(i).png").width > 0)
        }
    }

    @Test func adaptNIfTIWritesAMaskWithTheInputsHeader() throws {
        let model = try tinyModel(size: 32)
        let root = fixturePath("decathlon/Task99_Mini")
        let out = folder.path + "/adapt-nii"
        let p = try coordinator(["adapt", "--checkpoint", model, "--support", root + "/imagesTr/mini_000.nii.gz",
                                 "--support-masks", root + "/labelsTr/mini_000.nii.gz", "--label", "1",
                                 "--images", root + "/imagesTr/mini_001.nii.gz", "--masks", root + "/labelsTr/mini_001.nii.gz",
                                 "--out", out], name: "adapt-nii")
        #expect(p.waitExit() == 0, "\(p.stderr)")
        let input = try NIfTIVolume.read(path: root + "/imagesTr/mini_001.nii.gz")
        let prediction = try NIfTIVolume.read(path: out + "/mini_001_pred.nii.gz")
        #expect(prediction.dims == input.dims && prediction.datatype == 2)
        #expect(prediction.header[252..<344] == input.header[252..<344])
        #expect(prediction.values.allSatisfy { $0 == 0 || $0 == 1 })
        #expect(p.stdout.contains("hd95"))
    }

    @Test func badInputsAreOneClearLine() throws {
        let bad = folder.write("bad.safetensors", Data([1, 2, 3]))
        for (args, fragment) in [
            (["evaluate", "--checkpoint", bad], "bad.safetensors"),
            (["adapt", "--checkpoint", "/nonexistent.safetensors", "--support", "x", "--support-masks", "y", "--images", "z", "--out", folder.path + "/o"], "nonexistent"),
            (["train", "--steps", "-3", "--in-process"], "steps"),
            (["train", "--image-size", "30", "--in-process"], "multiple of 4"),
            (["meta-gradient", "--params", bad, "--task", bad, "--out", folder.path + "/g.safetensors"], "bad.safetensors"),
        ] {
            let p = try coordinator(args, name: "bad-\(args[0])-\(fragment.count)")
            let status = p.waitExit(timeout: 60)
            #expect(status != 0 && status != nil, "\(args)")
            #expect(p.stderr.contains(fragment), "\(args): \(p.stderr)")
            #expect(!p.stderr.contains("Fatal error") && !p.stderr.contains("Backtrac"), "crashed: \(p.stderr)")
        }
    }
}
