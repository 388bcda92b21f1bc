import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Study
import Testing
import TestSupport
import Training

/// The main job and the meta-test commands, end to end through the real executables.
@Suite(.serialized) struct PipelineTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// A miniature demo (tiny model on 16-pixel images, tiny budget) through the same code path
    /// as the real one: every output is there and well formed, the report starts with where
    /// meta-learning wins, and the cross-domain test ran on the real-scan fold it built from
    /// insighttoolkit5-examples (`.ci/run` installs it; without it the demo says so).
    @Test func miniatureDemoWritesEveryOutput() throws {
        let out = folder.path + "/demo"
        let p = try coordinator(["demo", "--out", out, "--image-size", "16", "--budget", "1", "--base-channels", "4", "--meta-batch", "2",
                                 "--validation-per-task", "1", "--test-per-task", "1", "--local-workers", "1"], name: "demo")
        #expect(p.waitExit(timeout: 600) == 0, "\(p.stderr.suffix(3000))")
        #expect(p.stdout.hasPrefix("Meta-learning against the best transfer baseline"), "\(p.stdout.prefix(500))")
        let json = try JSONFile.read(RegimeMapResults.self, from: out + "/results.json")
        #expect(json.headlines.map(\.shots) == [1, 5] && json.headlines.allSatisfy { $0.types == nil })
        for h in json.headlines {
            #expect(Set(h.fast.keys) == [.maml, .transferMultiClass, .scratch])
            #expect(h.fast.values.allSatisfy { (0...1).contains($0.mean) && $0.lower <= $0.mean && $0.mean <= $0.upper })
            #expect(h.fastDifference != nil && h.unrestrictedScratchDifference != nil)
            #expect(h.fastSteps.values.allSatisfy { $0.allSatisfy { $0 <= 5 } })
        }
        if FileManager.default.fileExists(atPath: ITKFold.defaultSource + "/" + ITKFold.image) {
            let cross = try #require(json.crossDomain)
            #expect(cross.headlines.map(\.shots) == [1, 5] && cross.headlines.allSatisfy { $0.fastScratchDifference != nil })
            #expect(FileManager.default.fileExists(atPath: out + "/real-scan-fold/dataset.json"))
        } else {
            #expect(json.crossDomain == nil && p.stderr.contains("insighttoolkit5-examples is not installed"))
        }
        for file in ["report.txt", "index.html", "map.svg", "difference.svg", "run.yaml"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
        #expect(try String(contentsOfFile: out + "/index.html", encoding: .utf8).contains("<svg"))
        #expect(p.stderr.contains("ETA"))
        // In a real browser: both figures render, and no two of their texts overlap.
        let browser = try #require(BrowserCheck.browser, "no chromium: apt-get install chromium (.ci/run does)")
        let check = try BrowserCheck.check(out + "/index.html", browser: browser)
        #expect(check.figures == 2 && check.empty.isEmpty && check.texts > 20, "\(check)")
        #expect(check.overlaps.isEmpty, "\(check.overlaps)")
    }

    /// Trains a tiny model on PNG-sized images for the commands below.
    func tinyModel(size: Int) throws -> String {
        let dir = folder.path + "/tiny-\(size)"
        let p = try coordinator(["train", "--image-size", "\(size)", "--base-channels", "4", "--outer-steps", "3", "--meta-batch", "2",
                                 "--shots", "2", "--query", "1", "--in-process", "--checkpoint-dir", dir], name: "tiny-\(size)")
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
        let report = try JSONFile.read(EvaluationReport.self, from: out)
        #expect(report.methods.map(\.name) == ["maml", "scratch", "transfer"])
        #expect(report.baselineNote != nil && p.stdout.contains("fixed preset"))
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
        // The study's other kinds of setting: the inner rule at scaled rates, and Adam.
        for (extra, said) in [(["--steps", "7", "--rate-scale", "4"], "7 inner steps, rates x4.0"), (["--adam-rate", "3e-3", "--steps", "4"], "Adam 4 steps at 0.003")] {
            let q = try coordinator(["adapt", "--checkpoint", model, "--support", tasks + "/discs8/images",
                                     "--support-masks", tasks + "/discs8/masks", "--images", tasks + "/discs16/images",
                                     "--out", out + "-\(extra[0])", "--shots", "3"] + extra, name: "adapt-png\(extra[0])")
            #expect(q.waitExit() == 0, "\(q.stderr)")
            #expect(q.stderr.contains(said), "\(q.stderr)")
            #expect(try PNG.read(path: out + "-\(extra[0])/masks/im0.png").width == 24)
        }
        // A negative step count with a real model was a crash (a range with its bounds
        // reversed); it is one clear line. (Written with "=": "-1" alone reads as an option.)
        let negative = try coordinator(["adapt", "--checkpoint", model, "--support", tasks + "/discs8/images",
                                        "--support-masks", tasks + "/discs8/masks", "--images", tasks + "/discs16/images",
                                        "--out", out + "-negative", "--steps=-1"], name: "adapt-png-negative")
        let status = negative.waitExit(timeout: 60)
        #expect(status != 0 && status != nil && negative.stderr.contains("--steps must be in"), "\(negative.stderr)")
        #expect(!negative.stderr.contains("Fatal error") && !negative.stderr.contains("Backtrac"), "crashed: \(negative.stderr)")
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

    /// `meta-gradient` from files, as a user checking against another framework runs it:
    /// second-order MAML, Proto-MAML and Proto-ANIL on W1 in float64 give PyTorch's
    /// meta-gradients (the fixture of `PyTorchMAMLTests`, which is also the task file).
    @Test func metaGradientFromFilesMatchesPyTorch() throws {
        let layout = try MetaLayout(config: MetaConfig())
        let params = folder.path + "/w1.safetensors"
        let values = ReferenceFormula.parameters(layout.model, gain: 6.0.squareRoot()).map(Double.init)
        try Safetensors.write(Safetensors.File(tensors: ParameterFile.tensors(float64: values, layout: layout)), to: params)
        let fixture = try Safetensors.read(path: fixturePath("maml_w1.safetensors"))
        for (prefix, flags) in [("second", []), ("proto", ["--prototype-head"]),
                                ("proto_anil", ["--prototype-head", "--head-only-inner-loop", "--inner-lr", "0.5"])] {
            let out = folder.path + "/\(prefix).safetensors"
            let p = try coordinator(["meta-gradient", "--params", params, "--task", fixturePath("maml_w1.safetensors"),
                                     "--precision", "float64", "--out", out] + flags, name: "meta-gradient-\(prefix)")
            #expect(p.waitExit(timeout: 300) == 0, "\(p.stderr.suffix(2000))")
            let ours = try ReferenceFormula.flat(try Safetensors.read(path: out), prefix: "", layout: layout.model)
            let theirs = try ReferenceFormula.flat(fixture, prefix: prefix + ".", layout: layout.model)
            #expect(relativeL2(ours, theirs) < 1e-4, "\(prefix) rel. error \(relativeL2(ours, theirs))")
        }
    }

    @Test func badInputsAreOneClearLine() throws {
        let bad = try folder.write("bad.safetensors", Data([1, 2, 3]))
        // A folder another process is writing into (this one holds it).
        let held = folder.path + "/held"
        let lock = try FolderLock(folder: held, purpose: "a test")
        defer { withExtendedLifetime(lock) {} }
        for (args, fragment) in [
            (["evaluate", "--checkpoint", bad], "bad.safetensors"),
            (["adapt", "--checkpoint", "/nonexistent.safetensors", "--support", "x", "--support-masks", "y", "--images", "z", "--out", folder.path + "/o"], "nonexistent"),
            (["train", "--outer-steps", "-3", "--in-process"], "steps"),
            (["evaluate", "--checkpoint", bad, "--steps=-2"], "--steps"),
            (["evaluate", "--checkpoint", bad, "--instances-per-task=-1"], "--instances-per-task"),
            (["evaluate", "--checkpoint", bad, "--baselines", "--fine-tune-steps=-1"], "--fine-tune-steps"),
            (["evaluate", "--checkpoint", bad, "--baselines", "--transfer-steps=-1"], "--transfer-steps"),
            (["adapt", "--checkpoint", bad, "--support", "x", "--support-masks", "y", "--images", "z", "--out", folder.path + "/o", "--steps=-1"], "--steps"),
            (["adapt", "--checkpoint", bad, "--support", "x", "--support-masks", "y", "--images", "z", "--out", folder.path + "/o", "--rate-scale", "nan"], "--rate-scale"),
            (["adapt", "--checkpoint", bad, "--support", "x", "--support-masks", "y", "--images", "z", "--out", folder.path + "/o", "--adam-rate=-1"], "--adam-rate"),
            (["train", "--image-size", "30", "--in-process"], "multiple of 4"),
            (["demo", "--out", folder.path + "/d", "--image-size=0"], "multiple of 4"),
            (["study", "--out", held, "--budget", "1"], "another process is using"),
            (["train", "--in-process", "--outer-steps", "2", "--checkpoint-dir", held], "another process is using"),
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
