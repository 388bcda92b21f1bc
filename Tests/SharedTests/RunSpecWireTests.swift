import Cluster
import Core
import Datasets
import Engine
import Foundation
import MetaLearning
import Pretraining
import Testing
import Training
import Wire

/// The run specification's wire form: what the coordinator sends is what the worker rebuilds,
/// and anything out of range is refused before it is used.
@Suite struct RunSpecWireTests {
    static func spec(pseudo: Bool = false, window: Bool = false, spacing: Double? = nil) -> RunSpec {
        var training = TrainingConfig()
        training.meta.order = .first
        training.meta.learnedInnerRates = true
        training.meta.multiStepLoss = true
        training.meta.firstOrderSteps = 7
        training.seed = 42
        var options = VolumeOptions()
        options.axis = .coronal
        options.augment = true
        if window { options.normalisation = .ctWindow(level: 40, width: 400) }
        if let spacing { options.resampling = .spacing(spacing) }
        var dataset = DatasetSpec(kind: .decathlon, name: "Task09_Spleen", path: "/data/Task09_Spleen", options: options,
                                  identity: DatasetIdentity(name: "Task09_Spleen", fingerprint: "abc"))
        if pseudo {
            var p = PseudoTaskOptions()
            p.superpixels = 30
            dataset.pseudo = p
            dataset.includeTrainingImages = true
        }
        var evaluation = EvaluationSpec()
        evaluation.steps = 20
        evaluation.perTask = 3
        return RunSpec(runID: RunSpec.randomID(), training: training, dataset: dataset,
                       split: TaskSplit(testPatterns: ["*/label-2/*"]), evaluation: evaluation)
    }

    @Test(arguments: [(false, false), (true, false), (false, true)])
    func roundTripKeepsEverythingAWorkerUses(_ variant: (pseudo: Bool, window: Bool)) throws {
        let original = Self.spec(pseudo: variant.pseudo, window: variant.window)
        let rebuilt = try RunSpec(wire: original.wireForm)
        #expect(rebuilt.runID == original.runID)
        #expect(rebuilt.training.meta == original.training.meta)
        #expect(rebuilt.training.seed == 42 && rebuilt.training.initSeed == 42)
        #expect(rebuilt.dataset == original.dataset)
        #expect(rebuilt.split == original.split)
        #expect(rebuilt.evaluation == original.evaluation)
        #expect(rebuilt.wireForm == original.wireForm)
    }

    /// Slices resampled to a spacing travel with the spacing: a worker that squashed them
    /// instead would open other data (regression: the field was missing, so every distributed
    /// run on a volume dataset at its median spacing was refused at READY).
    @Test func resamplingTravels() throws {
        let original = Self.spec(spacing: 1.25)
        let wire = original.wireForm
        #expect(wire.dataset.spacing == 1.25)
        #expect(try RunSpec(wire: wire).dataset.options.resampling == .spacing(1.25))
        #expect(try RunSpec(wire: Self.spec().wireForm).dataset.options.resampling == .squash)
        for bad in [0, -1, .nan, .infinity, 1e9] {
            var refused = wire
            refused.dataset.spacing = bad
            #expect(throws: WireError.self) { try RunSpec(wire: refused) }
        }
    }

    /// A head-only inner loop travels in the learner (version 3: a version-2 worker would
    /// ignore the field and compute full MAML, so it is refused by version), and is refused
    /// where it cannot run.
    @Test func headOnlyInnerLoopTravels() throws {
        var original = Self.spec()
        original.training.meta.learnedInnerRates = false
        original.training.meta.headOnlyInnerLoop = true
        let wire = original.wireForm
        #expect(wire.learner.headOnlyInnerLoop)
        #expect(try RunSpec(wire: wire).training.meta == original.training.meta)
        var refused = wire
        refused.learner.learnedInnerRates = true
        #expect(throws: WireError.self) { try RunSpec(wire: refused) }
        // Saved configurations from before it decode with the full inner loop.
        try Self.expectConfigurationsWithout("headOnlyInnerLoop")
    }

    /// A default configuration saved without `key` (by a build from before it) decodes to the
    /// default, and the key is saved today as `false`.
    static func expectConfigurationsWithout(_ key: String) throws {
        var object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(MetaConfig())) as? [String: Any])
        #expect(object[key] as? Bool == false)
        object[key] = nil
        #expect(try JSONDecoder().decode(MetaConfig.self, from: JSONSerialization.data(withJSONObject: object)) == MetaConfig())
    }

    /// A prototype head travels in the learner (version 4: a version-3 worker would ignore the
    /// field and compute plain MAML, so it is refused by version), and is refused where it
    /// cannot run; saved configurations from before it decode without it.
    @Test func prototypeHeadTravels() throws {
        var original = Self.spec()
        original.training.meta.prototypeHead = true
        let wire = original.wireForm
        #expect(wire.learner.prototypeHead)
        #expect(try RunSpec(wire: wire).training.meta == original.training.meta)
        var refused = wire
        refused.learner.order = "reptile"
        refused.learner.learnedInnerRates = false
        refused.learner.multiStepLoss = false
        #expect(throws: WireError.self) { try RunSpec(wire: refused) }
        try Self.expectConfigurationsWithout("prototypeHead")
    }

    /// Pseudo-tasks beside the labelled tasks travel with their settings, and a worker that
    /// opens the run's dataset with the run's split loads the coordinator's data. A worker
    /// that did not know the field would open the labelled tasks alone, whose fingerprint
    /// differs: the coordinator refuses it at READY.
    /// A 32x32 run on `dataset` with `split`.
    static func spec(of dataset: DatasetSpec, split: TaskSplit) -> RunSpec {
        var run = spec()
        run.dataset = dataset
        run.split = split
        run.training.meta.model = UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8).spec
        return run
    }

    /// Tasks added beside the labelled ones travel: the run's description survives the wire,
    /// a worker opens the same tasks (task `addedTask`, an added one, gives the same sample),
    /// and a worker that ignores the addition opens data with another fingerprint. Returns
    /// the run.
    func expectTravels(_ spec: DatasetSpec, _ augmented: TaskSource, plain: DatasetSpec, split: TaskSplit, addedTask: Int) throws -> RunSpec {
        let run = Self.spec(of: spec, split: split)
        let rebuilt = try RunSpec(wire: run.wireForm)
        #expect(rebuilt.dataset == spec)
        let opened = try rebuilt.dataset.openOnWorker(dataRoot: nil, split: rebuilt.split, logger: .init(label: "test"))
        #expect(opened.identity == augmented.identity && opened.taskNames == augmented.taskNames)
        #expect(try opened.sample(task: addedTask, index: 1, seed: 2, support: 2, query: 2)
                == augmented.sample(task: addedTask, index: 1, seed: 2, support: 2, query: 2))
        #expect(try plain.openOnWorker(dataRoot: nil, split: rebuilt.split, logger: .init(label: "test")).identity != augmented.identity)
        return run
    }

    @Test func pseudoTasksBesideTheLabelledTasksTravel() throws {
        var options = VolumeOptions()
        options.size = 32
        let (plain, source) = try DatasetSpec.open("synthetic", options: options, logger: .init(label: "test"))
        var p = PseudoTaskOptions()
        p.superpixels = 30
        let (spec, augmented) = try plain.addingPseudoTasks(p, to: source, split: source.defaultSplit)
        let run = try expectTravels(spec, augmented, plain: plain, split: source.defaultSplit, addedTask: 20)
        #expect(try RunSpec(wire: run.wireForm).dataset.pseudoBesideTasks == p && RunSpec(wire: run.wireForm).dataset.pseudo == nil)
        // Without pseudo-tasks the field is absent from the message, as in older ones.
        #expect(!String(decoding: try JSONEncoder().encode(Self.spec().wireForm), as: UTF8.self).contains("pseudoBesideTasks"))

        var bad = run.wireForm
        bad.dataset.pseudoBesideTasks?.maximumArea = 2
        #expect(throws: WireError.self) { try RunSpec(wire: bad) }
        bad = run.wireForm
        bad.dataset.pseudoBesideTasks?.compactness = .nan
        #expect(throws: WireError.self) { try RunSpec(wire: bad) }
        bad = run.wireForm
        bad.dataset.pseudo = bad.dataset.pseudoBesideTasks
        #expect(throws: WireError.self) { try RunSpec(wire: bad) }
    }

    /// The numerics fingerprint covers the pseudo-tasks beside the labelled tasks. The dataset
    /// identity names only their options, so a worker whose superpixels come out differently
    /// (other code, other kernels) can be told apart only by its numbers; before, the
    /// fingerprint read the first labelled task alone and let such a worker in.
    @Test func numericsFingerprintCoversThePseudoTasks() throws {
        var options = VolumeOptions()
        options.size = 32
        let (plain, source) = try DatasetSpec.open("synthetic", options: options, logger: .init(label: "test"))
        let (spec, augmented) = try plain.addingPseudoTasks(PseudoTaskOptions(), to: source, split: source.defaultSplit)
        let run = Self.spec(of: spec, split: source.defaultSplit)
        let masks = OtherPseudoTasks(base: augmented, labelled: source.taskNames.count, alter: { $0.queryMasks[0] = 1 - $0.queryMasks[0] })
        let images = OtherPseudoTasks(base: augmented, labelled: source.taskNames.count, alter: { $0.supportImages[5] += 0.25 })
        #expect(masks.identity == augmented.identity)
        let fingerprint = try NumericsCheck.fingerprint(run: run, source: augmented)
        #expect(try NumericsCheck.fingerprint(run: run, source: masks) != fingerprint)
        #expect(try NumericsCheck.fingerprint(run: run, source: images) != fingerprint)
        #expect(try NumericsCheck.fingerprint(run: run, source: augmented) == fingerprint)
    }

    @Test func unionTasksBesideTheLabelledTasksTravel() throws {
        var options = VolumeOptions()
        options.size = 32
        let (plain, source) = try DatasetSpec.open("synthetic-multi", options: options, logger: .init(label: "test"))
        let (spec, augmented) = try plain.addingUnionTasks(to: source, split: source.defaultSplit)
        let run = try expectTravels(spec, augmented, plain: plain, split: source.defaultSplit, addedTask: 22)
        #expect(try RunSpec(wire: run.wireForm).dataset.unionBesideTasks)
        #expect(!String(decoding: try JSONEncoder().encode(Self.spec().wireForm), as: UTF8.self).contains("unionBesideTasks"))

        var bad = run.wireForm
        bad.dataset.pseudoBesideTasks = .init(superpixels: 30, compactness: 0.6, maximumMerged: 3, minimumArea: 0.01, maximumArea: 0.5)
        let both = try #require(throws: WireError.self) { try RunSpec(wire: bad) }
        #expect("\(both)".contains("union tasks beside pseudo-tasks"), "\(both)")
        #expect(throws: DataError.self) { try spec.addingPseudoTasks(PseudoTaskOptions(), to: augmented, split: run.split) }
        var split = source.defaultSplit
        split.validationPatterns.append("union/*/organ/ct+*")
        let error = try #require(throws: DataError.self) { try plain.addingUnionTasks(to: source, split: split) }
        #expect("\(error)".contains("union/synthetic-multi/organ/ct+") && "\(error)".contains("meta-validation"), "\(error)")
    }

    /// Pseudo-tasks are meta-train tasks: a split whose patterns would make one a
    /// meta-validation or meta-test task (and so choose or report on it) is refused, naming it.
    @Test func pseudoTasksOutsideMetaTrainAreRefused() throws {
        var options = VolumeOptions()
        options.size = 32
        let (plain, source) = try DatasetSpec.open("synthetic", options: options, logger: .init(label: "test"))
        var split = source.defaultSplit
        split.validationPatterns.append("pseudo/synthetic/organ/*")
        let error = try #require(throws: DataError.self) { try plain.addingPseudoTasks(PseudoTaskOptions(), to: source, split: split) }
        #expect("\(error)".contains("pseudo/synthetic/organ/") && "\(error)".contains("meta-validation"), "\(error)")
        split = source.defaultSplit
        split.testPatterns.append("p*")
        #expect(throws: DataError.self) { try plain.addingPseudoTasks(PseudoTaskOptions(), to: source, split: split) }
        _ = try plain.addingPseudoTasks(PseudoTaskOptions(), to: source, split: source.defaultSplit)
    }

    @Test func outOfRangeFieldsAreRefused() {
        let good = Self.spec().wireForm
        var cases: [(String, Wire.RunSpecification)] = []
        var w = good; w.runID = "zz"; cases.append(("run id", w))
        w = good; w.model.nodes[1].layer = "transformer"; cases.append(("unknown layer", w))
        w = good; w.model.nodes[1].outChannels = nil; cases.append(("conv settings", w))
        w = good; w.learner.order = "third"; cases.append(("order", w))
        w = good; w.learner.innerSteps = -1; cases.append(("inner steps", w))
        w = good; w.dataset.size = 32; cases.append(("size", w))
        w = good; w.dataset.normalisation = .init(kind: "zscore", low: 50, high: 10); cases.append(("percentiles", w))
        w = good; w.dataset.axis = "diagonal"; cases.append(("axis", w))
        w = good; w.heldOut.support = 0; cases.append(("held-out shots", w))
        w = good; w.model.height = 100_000; cases.append(("model size", w))
        w = good; w.dataset.name = "../../etc"; cases.append(("dataset name climbs out of --data-root", w))
        w = good; w.dataset.name = ""; cases.append(("empty dataset name", w))
        w = good; w.model.height = 1024; w.model.width = 1024; w.dataset.size = 1024; w.learner.supportShots = 256
        cases.append(("memory per thread", w))
        for (what, spec) in cases {
            #expect(throws: WireError.self, "\(what)") { try RunSpec(wire: spec) }
        }
    }

    /// The numerics settings travel (since version 5: a version-4 worker would compute with its
    /// own kernels and be refused only by the fingerprint), and an unknown kernel set is refused.
    @Test func numericsTravel() throws {
        var original = Self.spec()
        original.numerics = NumericsSettings(cpuKernels: .avx2, matrixLibrary: .openblas, convolution: .im2col, keptSteps: 3)
        let wire = original.wireForm
        #expect(Wire.version == 7)
        #expect(try RunSpec(wire: wire).numerics == original.numerics)
        original.numerics = NumericsSettings(cpuKernels: .avx512, convolution: .winograd)
        #expect(try RunSpec(wire: original.wireForm).numerics == original.numerics)
        var refused = wire
        refused.numerics.convolution = "fft"
        #expect(throws: WireError.self) { try RunSpec(wire: refused) }
        refused = wire
        refused.numerics.cpuKernels = "sse9"
        #expect(throws: WireError.self) { try RunSpec(wire: refused) }
        refused = wire
        refused.numerics.keptSteps = -1
        #expect(throws: WireError.self) { try RunSpec(wire: refused) }
    }

    /// The precision travels (version 6: a version-5 worker would compute Float32); Float32 is
    /// the absent field, and anything else but bf16 is refused.
    @Test func precisionTravels() throws {
        var original = Self.spec()
        original.numerics = NumericsSettings(cpuKernels: .avx512BF16, precision: .bf16)
        let wire = original.wireForm
        #expect(wire.numerics.precision == "bf16")
        #expect(try RunSpec(wire: wire).numerics.precision == .bf16)
        original.numerics.precision = .float32
        #expect(original.wireForm.numerics.precision == nil)
        #expect(try RunSpec(wire: original.wireForm).numerics.precision == .float32)
        for name in ["float32", "fp16", ""] {
            var refused = wire
            refused.numerics.precision = name
            #expect(throws: WireError.self, "\(name)") { try RunSpec(wire: refused) }
        }
    }

    /// The fuzzer's seed messages are messages of today's protocol (each a frame list: a
    /// 2-byte length, then the frame): they parse, and the WELCOME's run specification is one
    /// a worker accepts, so fuzzing starts past the version check and into the validation.
    @Test func fuzzSeedsSpeakTodaysProtocol() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus/Wire")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(names.count >= 10)
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: folder.appendingPathComponent(name)))
            var frames: [[UInt8]] = [], offset = 0
            while offset + 2 <= bytes.count {
                let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
                offset += 2
                frames.append(Array(bytes[offset..<min(bytes.count, offset + length)]))
                offset += length
            }
            let message = try #require(try? Wire.Message(frames: frames, maximumPayload: 1 << 16), "\(name)")
            if name == "welcome" {
                let spec = try RunSpec(wire: try message.decode(Wire.Welcome.self).run)
                #expect(spec.numerics.precision == .bf16)
            }
        }
    }

    /// Numerics saved before the precision existed (run specification schema 2) read as
    /// Float32, and without a convolution path as oneDNN's direct primitives (the default
    /// then); a bf16 specification reads back as bf16.
    @Test func savedNumericsWithoutPrecisionAreFloat32() throws {
        let old = Data(#"{"cpuKernels":"avx512","matrixLibrary":"onednn","keptSteps":2}"#.utf8)
        let settings = try JSONDecoder().decode(NumericsSettings.self, from: old)
        #expect(settings == NumericsSettings(cpuKernels: .avx512, convolution: .primitives, keptSteps: 2))
        let bf16 = NumericsSettings(cpuKernels: .avx512BF16, precision: .bf16)
        #expect(try JSONDecoder().decode(NumericsSettings.self, from: JSONEncoder().encode(bf16)) == bf16.resolved())
    }

    /// Winograd is the default convolution path where it runs (Float32 on AVX-512 kernels with
    /// oneDNN), and the default is named wherever settings are recorded or sent, so a record
    /// keeps its meaning: records and coordinators that name no path (from before this
    /// default) mean the direct primitives.
    @Test func theDefaultConvolutionIsNamedInEveryRecord() throws {
        #expect(NumericsSettings(cpuKernels: .avx512).resolved().convolution == .winograd)
        #expect(NumericsSettings(cpuKernels: .avx512BF16).resolved().convolution == .winograd)
        #expect(NumericsSettings(cpuKernels: .avx2).resolved().convolution == .primitives)
        #expect(NumericsSettings(precision: .bf16).resolved().convolution == .primitives)
        #expect(NumericsSettings(cpuKernels: .avx512, matrixLibrary: .openblas).resolved().convolution == .im2col)
        #expect(NumericsSettings(cpuKernels: .avx512, convolution: .primitives).resolved().convolution == .primitives)

        let fresh = NumericsSettings(cpuKernels: .avx512, keptSteps: 1)
        let json = String(decoding: try JSONEncoder().encode(fresh), as: UTF8.self)
        #expect(json.contains(#""convolution":"winograd""#), "\(json)")
        #expect(try JSONDecoder().decode(NumericsSettings.self, from: Data(json.utf8)).convolution == .winograd)

        var original = Self.spec()
        original.numerics = fresh
        var wire = original.wireForm
        #expect(wire.numerics.convolution == "winograd")
        #expect(try RunSpec(wire: wire).numerics.convolution == .winograd)
        wire.numerics.convolution = nil
        #expect(try RunSpec(wire: wire).numerics.convolution == .primitives)
    }

    /// The run's kept passes (`--keep-steps`) count towards a worker's memory per thread: a
    /// specification that fits without them is refused with them, naming the setting.
    @Test func keptStepsCountTowardsTheMemoryLimit() throws {
        var w = Self.spec().wireForm
        w.learner.order = "second"
        w.model.height = 512; w.model.width = 512; w.dataset.size = 512
        w.learner.innerSteps = 1000
        func spec(keeping kept: Int) throws(WireError) -> RunSpec {
            var k = w
            k.numerics.keptSteps = kept
            return try RunSpec(wire: k)
        }
        _ = try spec(keeping: 0)
        _ = try spec(keeping: 1)
        do {
            _ = try spec(keeping: 1000)
            Issue.record("a run needing a tape per inner step at 512x512 was accepted")
        } catch {
            #expect("\(error)".contains("--keep-steps 1000"), "\(error)")
        }
        w.learner.order = "first"
        _ = try spec(keeping: 1000)
        // A head-only inner loop keeps one tape whatever --keep-steps says.
        w.learner.order = "second"
        w.learner.learnedInnerRates = false
        w.learner.headOnlyInnerLoop = true
        _ = try spec(keeping: 1000)
    }
}

/// A source whose pseudo-tasks (the tasks after the labelled ones) come out differently, as
/// on a machine whose superpixels differ; same identity, same labelled tasks.
private struct OtherPseudoTasks: TaskSource {
    let base: TaskSource
    let labelled: Int
    let alter: @Sendable (inout TaskSample) -> Void

    var identity: DatasetIdentity { base.identity }
    var imageShape: FeatureShape { base.imageShape }
    var taskNames: [String] { base.taskNames }
    var defaultSplit: TaskSplit { base.defaultSplit }

    func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
        var s = try base.sample(task: task, index: index, seed: seed, support: support, query: query)
        if task >= labelled { alter(&s) }
        return s
    }
}
