import Core
import Datasets
import Evaluation
import Foundation
import Study
import Testing
import TestSupport

/// The study protocol end to end through the real executable, on a Decathlon-layout dataset
/// with several labels (one task per label), as a user would run it on their own data.
@Suite(.serialized) struct StudyTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    /// The fixture's volumes relabelled into four structures (the organ's quadrants), so
    /// meta-train, meta-validation and meta-test each get their own label.
    func fourLabelDataset() throws -> String {
        let source = fixturePath("decathlon/Task99_Mini")
        let root = folder.path + "/Task98_Four"
        for sub in ["imagesTr", "labelsTr"] {
            try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        var training: [String] = []
        for i in 0..<3 {
            let name = String(format: "mini_%03d.nii.gz", i)
            try FileManager.default.copyItem(atPath: "\(source)/imagesTr/\(name)", toPath: "\(root)/imagesTr/\(name)")
            let labels = try NIfTIVolume.read(path: "\(source)/labelsTr/\(name)")
            let (nx, ny) = (labels.dims.x, labels.dims.y)
            // The organ's four quadrants about its centre, each in every slice the organ is in.
            var (cx, cy, n) = (0.0, 0.0, 0.0)
            for v in labels.values.indices where labels.values[v] == 1 {
                cx += Double(v % nx); cy += Double((v / nx) % ny); n += 1
            }
            (cx, cy) = (cx / n, cy / n)
            var relabelled = [UInt8](repeating: 0, count: labels.values.count)
            for v in labels.values.indices where labels.values[v] == 1 {
                let x = Double(v % nx), y = Double((v / nx) % ny)
                relabelled[v] = (x < cx ? 1 : 2) + (y < cy ? 0 : 2)
            }
            try NIfTIVolume.writeMask(relabelled, like: labels, to: "\(root)/labelsTr/\(name)")
            training.append(#"{"image": "./imagesTr/\#(name)", "label": "./labelsTr/\#(name)"}"#)
        }
        let json = """
            {"name": "Four", "modality": {"0": "CT"},
             "labels": {"0": "background", "1": "upper-left", "2": "upper-right", "3": "lower-left", "4": "lower-right"},
             "numTraining": 3, "training": [\(training.joined(separator: ", "))], "test": []}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/dataset.json"))
        return root
    }

    /// The four-label dataset's split: label 3 for meta-validation, label 4 for meta-test.
    static let fourLabelSplit = ["--validate", "*/label-3/*", "--hold-out", "*/label-4/*", "--across-volumes"]

    /// A small study's command line; `extra` options override the ones before them.
    static func studyArguments(_ dataset: String, out: String, candidates: String = "maml-first,transfer@0.001,scratch",
                               split: [String] = fourLabelSplit, extra: [String]) -> [String] {
        ["study", "--dataset", dataset, "--out", out, "--image-size", "16", "--base-channels", "4",
         "--meta-batch", "2", "--budget", "1", "--candidates", candidates] + split
            + ["--shots", "2", "--shots-curve", "1,2", "--validation-per-task", "2", "--test-per-task", "3"] + extra
    }

    func study(_ dataset: String, out: String, candidates: String = "maml-first,transfer@0.001,scratch",
               split: [String] = fourLabelSplit, extra: [String]) throws -> StudyResults {
        let p = try coordinator(Self.studyArguments(dataset, out: out, candidates: candidates, split: split, extra: extra), name: "study")
        #expect(p.waitExit(timeout: 600) == 0, "\(p.stderr.suffix(3000))")
        return try JSONFile.read(StudyResults.self, from: out + "/results.json")
    }

    /// What two runs of the same study must agree on, value for value.
    static func table(_ r: StudyResults) throws -> Data {
        struct Table: Encodable {
            var chosen: [Family: StudyResults.Chosen]
            var metaTest: [String: StudyResults.Scores]
            var pairedDifferences: [String: MeanCI]
            var diceVsBudget: [Family: [StudyState.Point]]
            var diceVsShots: [Family: [StudyState.Point]]
        }
        return try JSONFile.encode(Table(chosen: r.chosen, metaTest: r.metaTest, pairedDifferences: r.pairedDifferences,
                                         diceVsBudget: r.diceVsBudget, diceVsShots: r.diceVsShots))
    }

    @Test func aStudyOnADecathlonDatasetChoosesOnValidationAndIsReproducibleOnAnyWorkers() throws {
        let dataset = try fourLabelDataset()
        let first = try study(dataset, out: folder.path + "/in-process", extra: ["--in-process"])

        // The three roles are the tasks the patterns name, and never overlap.
        #expect(first.split.metaValidation == ["Task98_Four/label-3/axial"])
        #expect(first.split.metaTest == ["Task98_Four/label-4/axial"])
        #expect(Set(first.split.metaTrain) == ["Task98_Four/label-1/axial", "Task98_Four/label-2/axial"])

        // Every family's choice was made on meta-validation; the meta-test saw only the chosen.
        #expect(Set(first.chosen.keys) == [.maml, .transfer, .scratch])
        #expect(Set(first.metaTest.keys) == ["maml", "transfer", "scratch"])
        for (_, r) in first.metaTest {
            #expect(Array(r.perTaskDice.keys) == ["Task98_Four/label-4/axial"])
            #expect(r.instanceDice.count == 3)
        }
        #expect(Set(first.pairedDifferences.keys) == ["maml - transfer", "maml - scratch"])
        // Charts as SVG, inlined in index.html with the per-task table and the overlays.
        for svg in ["dice_vs_budget.svg", "dice_vs_shots.svg"] {
            let text = try String(contentsOfFile: folder.path + "/in-process/" + svg, encoding: .utf8)
            #expect(text.hasPrefix("<svg") && text.contains("</svg>") && text.contains("maml"), "\(svg)")
        }
        let html = try String(contentsOfFile: folder.path + "/in-process/index.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("Task98_Four/label-4/axial") && html.contains("adaptation.png"))
        let browser = try #require(BrowserCheck.browser, "no chromium: apt-get install chromium (.ci/run does)")
        let check = try BrowserCheck.check(folder.path + "/in-process/index.html", browser: browser)
        #expect(check.figures == 2 && check.empty.isEmpty && check.images == 1 && check.broken.isEmpty, "\(check)")
        #expect(check.overlaps.isEmpty, "\(check.overlaps)")
        // One row of 16x16 panels (image, truth, before, after) for the one test task.
        let pictures = try PNG.read(path: folder.path + "/in-process/adaptation.png")
        #expect(pictures.width > 4 * 16 && pictures.height >= 16)

        // The same study with a local worker process and the first one's step costs (so the
        // same step counts): the same table, value for value.
        let second = try study(dataset, out: folder.path + "/distributed",
                               extra: ["--local-workers", "1", "--costs-from", folder.path + "/in-process/state.json"])
        #expect(try Self.table(second) == Self.table(first))

        // Run again on a finished study: it continues (nothing to do) and writes the same table.
        let again = try study(dataset, out: folder.path + "/in-process", extra: ["--in-process"])
        #expect(try Self.table(again) == Self.table(first))
    }

    /// Proto-MAML through a worker process (the prototype head travels in the run
    /// specification) gives the in-process table; the per-task-heads baseline adapted two ways
    /// is trained once, and both ways are tuned on meta-validation.
    @Test func protoMAMLRunsOnWorkersAndTwinBaselinesTrainOnce() throws {
        let dataset = try fourLabelDataset()
        let candidates = "protomaml++-second,transfer-heads@0.001,transfer-heads+proto@0.001"
        let small = ["--validation-per-task", "1", "--shots-curve", "2"]
        let first = try study(dataset, out: folder.path + "/proto-in-process", candidates: candidates, extra: small + ["--in-process"])
        let second = try study(dataset, out: folder.path + "/proto-distributed", candidates: candidates,
                               extra: small + ["--local-workers", "1", "--costs-from", folder.path + "/proto-in-process/state.json"])
        #expect(try Self.table(second) == Self.table(first))

        let state = try StudyState.load(folder.path + "/proto-in-process/state.json")
        let plain = try #require(state.trained["transfer-heads@0.001"])
        #expect(state.trained["transfer-heads+proto@0.001"] == plain)
        #expect(state.stageSeconds.keys.contains("training transfer-heads@0.001"))
        #expect(!state.stageSeconds.keys.contains { $0.contains("training") && $0.contains("+proto@") })
        #expect(state.tuned.keys.contains("transfer-heads+proto@0.001") && state.tuned.keys.contains("transfer-heads@0.001"))
        #expect(first.chosen[.maml]?.candidate == "protomaml++-second")
    }

    /// Union tasks and a recipe's own inner steps travel to worker processes: a study of
    /// MAML++ with union tasks and MAML++ with 10 inner steps on the conflicting synthetic
    /// family (its default split) gives the in-process table value for value. (One family is
    /// a study too: it has nothing to pair, and its report says nothing about pairs.) On data
    /// whose tasks label different images, the plan has no union candidate.
    @Test func unionTasksAndLongerInnerLoopsRunOnWorkers() throws {
        let candidates = "maml++-second+union,maml++-second-10steps"
        // The family has four meta-validation and four meta-test tasks: one instance of each
        // is enough to choose and to compare.
        let small = ["--validation-per-task", "1", "--test-per-task", "1", "--shots-curve", "2"]
        let first = try study("synthetic-multi", out: folder.path + "/union-in-process", candidates: candidates, split: [],
                              extra: small + ["--in-process"])
        let second = try study("synthetic-multi", out: folder.path + "/union-distributed", candidates: candidates, split: [],
                               extra: small + ["--local-workers", "1", "--costs-from", folder.path + "/union-in-process/state.json"])
        #expect(try Self.table(second) == Self.table(first))
        #expect(first.pairedDifferences.isEmpty)
        let report = try String(contentsOfFile: folder.path + "/union-in-process/report.txt", encoding: .utf8)
        #expect(report.contains("chosen for maml") && !report.contains("Paired differences"), "\(report)")
        let costs = try StudyState.load(folder.path + "/union-in-process/state.json").stepCost
        #expect(costs.keys.contains("meta-second+lslr+msl+union") && costs.keys.contains("meta-second+lslr+msl+steps10"))

        let p = try coordinator(["study", "--dataset", try fourLabelDataset(), "--out", folder.path + "/no-union",
                                 "--candidates", "maml++-second+union"] + Self.fourLabelSplit, name: "no-union")
        #expect(p.waitExit(timeout: 120) != 0)
        #expect(p.stderr.contains("no candidate maml++-second+union"), "\(p.stderr.suffix(2000))")
    }

    /// A study starts local workers at every meta-training stage, from beside its own
    /// executable. Replacing the installed executables during a long study (a rebuild, an
    /// upgrade) once made every later stage fail with "no worker executable at
    /// /proc/self/medmaml-worker": the running program's own path then reads
    /// "<path> (deleted)".
    @Test func aStudyOutlivesItsExecutablesBeingReplaced() throws {
        let bin = folder.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for name in ["medmaml-coordinator", "medmaml-worker"] {
            try copyExecutable(executable(name), to: bin + "/" + name)
        }
        let p = try ChildProcess(bin + "/medmaml-coordinator",
                                 ["study", "--dataset", try fourLabelDataset(), "--out", folder.path + "/replaced", "--image-size", "16",
                                  "--base-channels", "4", "--meta-batch", "2", "--budget", "1", "--candidates", "maml-first,transfer@0.001"]
                                 + Self.fourLabelSplit
                                 + ["--shots", "2", "--shots-curve", "2", "--validation-per-task", "2", "--test-per-task", "2", "--local-workers", "1"],
                                 name: "replaced", folder: folder.path)
        #expect(p.waitFor("study: calibration"))
        // As an install does: a new file renamed over each old one.
        for name in ["medmaml-coordinator", "medmaml-worker"] {
            try copyExecutable(executable(name), to: bin + "/" + name + ".new")
            #expect(rename(bin + "/" + name + ".new", bin + "/" + name) == 0)
        }
        #expect(p.waitExit(timeout: 600) == 0, "\(p.stderr.suffix(3000))")
    }

    /// A budget worth fewer outer steps than there are snapshots (a slow machine, a costly
    /// recipe, a tiny budget) snapshots every fraction at the steps it has, and says what
    /// each cost. It once trained and then stopped with "a snapshot is missing": two
    /// fractions fell on one step, and the step kept only one of them.
    @Test func aBudgetOfFewerStepsThanSnapshotsStillTakesEverySnapshot() throws {
        let out = folder.path + "/one-step"
        _ = try study(try fourLabelDataset(), out: out, extra: ["--in-process", "--budget", "0.001"])
        let trained = try StudyState.load(out + "/state.json").trained
        for name in ["maml-first", "transfer@0.001"] {
            #expect(trained[name]?.fractions == [0.25, 0.5, 0.75, 1], "\(name): \(String(describing: trained[name]))")
            #expect(trained[name]?.steps == [1, 1, 1, 1], "\(name): \(String(describing: trained[name]))")
        }
    }

    /// With --pretraining the plan has both pretexts (superpixel pseudo-tasks, masked-image
    /// reconstruction), each for half the budget before second-order MAML from its result.
    /// Both are trained and tuned; the pretraining family's choice is the better of the two on
    /// meta-validation, and the meta-test pairs it with MAML from the random start.
    @Test func bothPretextsAreTrainedAndThePretrainingFamilyChoosesOnMetaValidation() throws {
        let out = folder.path + "/pretexts"
        let results = try study(try fourLabelDataset(), out: out,
                                candidates: "maml-second,pretrained-maml-second,pretrained-masked-maml-second",
                                extra: ["--in-process", "--pretraining", "--validation-per-task", "1", "--shots-curve", "2"])
        let state = try StudyState.load(out + "/state.json")
        #expect(state.stepCost["pretrain"] != nil && state.stepCost["pretrain-masked"] != nil, "\(state.stepCost)")
        var best: [String: Double] = [:]
        for name in ["pretrained-maml-second", "pretrained-masked-maml-second"] {
            #expect(state.trained[name]?.fractions == [0.25, 0.5, 0.75, 1], "\(name): \(String(describing: state.trained[name]))")
            let t = try #require(state.tuned[name])
            best[name] = t.dice[t.bestSnapshot][t.bestSetting]
        }
        // The two pretexts start from the same random draw but train different models.
        let files = try ["pretrained-maml-second", "pretrained-masked-maml-second"].map { try #require(state.trained[$0]).files[1] }
        let models = try files.map { try Data(contentsOf: URL(fileURLWithPath: out + "/" + $0)) }
        #expect(models[0] != models[1])
        let expected = best["pretrained-masked-maml-second"]! > best["pretrained-maml-second"]!
            ? "pretrained-masked-maml-second" : "pretrained-maml-second"
        #expect(results.chosen[.pretrainedMAML]?.candidate == expected, "\(results.chosen) \(best)")
        #expect(results.pairedDifferences.keys.contains("pretrained-maml - maml"), "\(results.pairedDifferences.keys)")
    }

    /// SIGINT during a tuning stage stops the study at the next adaptation, before the stage
    /// is recorded, and the same command then continues it to the table of a study never
    /// stopped. The signal was once honoured only when the stage ended, minutes later.
    @Test func aStudyStoppedWhileTuningStopsThereAndContinuesToTheSameTable() throws {
        let dataset = try fourLabelDataset()
        // Enough meta-validation instances that tuning one candidate lasts long enough to be
        // interrupted.
        let options = ["--in-process", "--validation-per-task", "4", "--shots-curve", "2"]
        let whole = try study(dataset, out: folder.path + "/whole", candidates: Self.stoppedCandidates, extra: options)
        // The first study's step costs, so the same step counts.
        let extra = options + ["--costs-from", folder.path + "/whole/state.json"]
        let out = folder.path + "/stopped"
        let p = try coordinator(Self.studyArguments(dataset, out: out, candidates: Self.stoppedCandidates, extra: extra), name: "stopped")
        #expect(p.waitFor("study: tuning maml-first", timeout: 600))
        p.signal(SIGINT)
        #expect(p.waitExit(timeout: 600) == 128 + SIGINT, "\(p.stderr.suffix(3000))")
        #expect(p.stderr.contains("stopped by signal 2; run the same command to continue"))
        #expect(!p.stderr.contains("maml-first: best on meta-validation"), "\(p.stderr.suffix(2000))")
        let state = try StudyState.load(out + "/state.json")
        #expect(state.trained["maml-first"] != nil)
        #expect(state.tuned["maml-first"] == nil, "the interrupted stage was recorded")

        let resumed = try study(dataset, out: out, candidates: Self.stoppedCandidates, extra: extra)
        #expect(try Self.table(resumed) == Self.table(whole))
    }
    /// A trained candidate to stop while tuning, and a baseline to pair it with.
    static let stoppedCandidates = "maml-first,scratch"
}
