import Core
import Datasets
import Engine
import MetaLearning
import Pretraining
import Training
import Wire

/// Between a run's specification and its wire form (`Wire.RunSpecification`): the coordinator
/// sends `wireForm` in WELCOME, a worker rebuilds the run with `init(wire:)`, which validates
/// every field before anything is opened or allocated.
extension RunSpec {
    public var wireForm: Wire.RunSpecification {
        let meta = training.meta
        let model = Wire.RunSpecification.Model(
            name: meta.model.name, channels: meta.model.input.channels, height: meta.model.input.height,
            width: meta.model.input.width, nodes: meta.model.nodes.map(Self.wireNode))
        let learner = Wire.RunSpecification.Learner(
            supportShots: meta.supportShots, queryShots: meta.queryShots, innerSteps: meta.innerSteps,
            innerLearningRate: meta.innerLearningRate, learnedInnerRates: meta.learnedInnerRates, order: meta.order.rawValue,
            firstOrderSteps: meta.firstOrderSteps, multiStepLoss: meta.multiStepLoss, multiStepAnnealSteps: meta.multiStepAnnealSteps,
            headOnlyInnerLoop: meta.headOnlyInnerLoop, prototypeHead: meta.prototypeHead)
        let o = dataset.options
        let normalisation: Wire.RunSpecification.Normalisation = switch o.normalisation {
        case .zscore(let low, let high): .init(kind: "zscore", low: low, high: high)
        case .ctWindow(let level, let width): .init(kind: "ctWindow", level: level, width: width)
        }
        let wireDataset = Wire.RunSpecification.Dataset(
            kind: dataset.kind.rawValue, name: dataset.name, path: dataset.path, identityName: dataset.identity.name,
            fingerprint: dataset.identity.fingerprint, axis: o.axis.rawValue, size: o.size, normalisation: normalisation,
            requireLabel: o.requireLabel, sameVolume: o.sameVolume, augment: o.augment, skipBad: o.skipBad,
            pseudo: dataset.pseudo.map(Self.wirePseudo), includeTrainingImages: dataset.includeTrainingImages,
            pseudoBesideTasks: dataset.pseudoBesideTasks.map(Self.wirePseudo), unionBesideTasks: dataset.unionBesideTasks ? true : nil,
            universe: dataset.universe.map { .init(types: $0.types, metaAugmentation: $0.metaAugmentation, seed: $0.seed) },
            separateVolumes: o.separateVolumes ? true : nil, spacing: Self.wireSpacing(o.resampling))
        let e = evaluation
        return Wire.RunSpecification(
            runID: runID, seed: training.seed, initSeed: training.initSeed ?? training.seed, model: model, learner: learner,
            dataset: wireDataset, validationPatterns: split.validationPatterns, testPatterns: split.testPatterns,
            heldOut: .init(seed: e.seed, support: e.support, query: e.query, steps: e.steps, perTask: e.perTask),
            numerics: .init(cpuKernels: numerics.resolved().cpuKernels?.rawValue ?? "avx2", matrixLibrary: numerics.matrixLibrary.rawValue,
                            convolution: numerics.resolved().convolution?.rawValue,
                            precision: numerics.precision == .float32 ? nil : numerics.precision.rawValue, keptSteps: numerics.keptSteps))
    }

    /// The spacing slices are resampled to; nil for whole slices. A dataset spec holds the
    /// median spacing resolved (`DatasetSpec.open` resolves it when it opens the volumes).
    private static func wireSpacing(_ resampling: VolumeOptions.Resampling) -> Double? {
        switch resampling {
        case .squash: nil
        case .spacing(let mm): mm
        case .medianSpacing: preconditionFailure("a run specification with the median spacing unresolved")
        }
    }

    private static func wirePseudo(_ p: PseudoTaskOptions) -> Wire.RunSpecification.Pseudo {
        Wire.RunSpecification.Pseudo(superpixels: p.superpixels, compactness: p.compactness, maximumMerged: p.maximumMerged,
                                     minimumArea: p.minimumArea, maximumArea: p.maximumArea)
    }

    /// Pseudo-task settings from the wire, each checked for range.
    private static func pseudoOptions(_ p: Wire.RunSpecification.Pseudo) throws(WireError) -> PseudoTaskOptions {
        guard (4...1000).contains(p.superpixels) && (0...10).contains(p.maximumMerged) && p.compactness.isFinite && p.compactness > 0
                  && p.minimumArea.isFinite && p.maximumArea.isFinite && 0 <= p.minimumArea && p.minimumArea <= p.maximumArea && p.maximumArea <= 1
        else { throw .malformed("run specification: pseudo-task settings out of range") }
        var pseudo = PseudoTaskOptions()
        pseudo.superpixels = p.superpixels
        pseudo.compactness = p.compactness
        pseudo.maximumMerged = p.maximumMerged
        pseudo.minimumArea = p.minimumArea
        pseudo.maximumArea = p.maximumArea
        return pseudo
    }

    private static func wireNode(_ node: ModelSpec.Node) -> Wire.RunSpecification.Node {
        var n = Wire.RunSpecification.Node(name: node.name, layer: "", inputs: node.inputs)
        switch node.op {
        case .input: n.layer = "input"
        case .conv2d(let outChannels, let kernel, let bias):
            n.layer = "conv2d"
            (n.outChannels, n.kernel, n.bias) = (outChannels, kernel, bias)
        case .groupNorm(let groups, let epsilon):
            n.layer = "groupNorm"
            (n.groups, n.epsilon) = (groups, epsilon)
        case .relu: n.layer = "relu"
        case .maxPool2: n.layer = "maxPool2"
        case .upsample2: n.layer = "upsample2"
        case .concat: n.layer = "concat"
        }
        return n
    }

    /// Rebuilds a run from its wire form, checking every field: ranges, names, the model graph
    /// and the learner settings. What only the coordinator uses (the optimizer, the number of
    /// steps, the meta-batch) keeps its default. The run's kept inner steps count towards the
    /// memory a compute thread may need.
    public init(wire w: Wire.RunSpecification) throws(WireError) {
        func check(_ condition: Bool, _ what: @autoclosure () -> String) throws(WireError) {
            if !condition { throw .malformed("run specification: \(what())") }
        }
        let keptSteps = w.numerics.keptSteps
        try check(keptSteps.map { (0...ActivationMemory.maximumKeptSteps).contains($0) } ?? true, "kept steps out of range")
        try check(Wire.RunID(hex: w.runID) != nil, "run id is not 32 hex characters")
        let m = w.model
        try check((1...64).contains(m.channels) && (1...4096).contains(m.height) && (1...4096).contains(m.width),
                  "model input \(m.channels)x\(m.height)x\(m.width) out of range")
        try check(m.name.count <= 256 && m.nodes.count <= 10_000, "model too large")
        var nodes: [ModelSpec.Node] = []
        for n in m.nodes {
            let op: ModelSpec.Op
            switch n.layer {
            case "input": op = .input
            case "conv2d":
                guard let c = n.outChannels, let k = n.kernel, let b = n.bias else { throw .malformed("run specification: conv2d node '\(n.name)' lacks its settings") }
                op = .conv2d(outChannels: c, kernel: k, bias: b)
            case "groupNorm":
                guard let g = n.groups, let e = n.epsilon else { throw .malformed("run specification: groupNorm node '\(n.name)' lacks its settings") }
                op = .groupNorm(groups: g, epsilon: e)
            case "relu": op = .relu
            case "maxPool2": op = .maxPool2
            case "upsample2": op = .upsample2
            case "concat": op = .concat
            default: throw .malformed("run specification: unknown layer '\(n.layer.prefix(40))'")
            }
            nodes.append(ModelSpec.Node(name: n.name, op: op, inputs: n.inputs))
        }
        var meta = MetaConfig(model: ModelSpec(name: m.name, input: FeatureShape(channels: m.channels, height: m.height, width: m.width),
                                               nodes: nodes))
        let l = w.learner
        guard let order = MetaOrder(rawValue: l.order) else { throw .malformed("run specification: unknown order '\(l.order.prefix(40))'") }
        meta.supportShots = l.supportShots
        meta.queryShots = l.queryShots
        meta.innerSteps = l.innerSteps
        meta.innerLearningRate = l.innerLearningRate
        meta.learnedInnerRates = l.learnedInnerRates
        meta.order = order
        meta.firstOrderSteps = l.firstOrderSteps
        meta.multiStepLoss = l.multiStepLoss
        meta.multiStepAnnealSteps = l.multiStepAnnealSteps
        meta.headOnlyInnerLoop = l.headOnlyInnerLoop
        meta.prototypeHead = l.prototypeHead
        do { try meta.validate() } catch { throw .malformed("run specification: \(error)") }
        guard let layout = try? MetaLayout(config: meta), layout.count <= Wire.maximumParameterCount,
              let shapes = try? meta.model.validate()
        else { throw .malformed("run specification: the model has too many parameters") }
        // What one compute thread would allocate: four buffers per activation for the largest
        // batch, the inner loop's parameter-sized buffers, and this worker's kept passes (at
        // most two buffers per activation for the support set, per kept second-order step). A
        // specification that needs more is refused before anything is allocated.
        let batch = Double(max(l.supportShots, l.queryShots, w.heldOut.support, w.heldOut.query))
        let perImage = shapes.reduce(0.0) { $0 + Double($1.count) } * 4
        let activations = perImage * batch * 4
        let parameters = Double(layout.count) * Double(l.innerSteps + 8) * 4
        // A head-only inner loop keeps one tape, its support pass, and no inner step's.
        let tape = perImage * Double(l.supportShots) * 2
        let kept = order == .second && !meta.headOnlyInnerLoop
            ? ActivationMemory.keptSteps(requested: keptSteps, tapeBytes: Int(min(tape, 1e15)), innerSteps: l.innerSteps) : 0
        let tapes = tape * Double(kept + (meta.headOnlyInnerLoop ? 1 : 0))
        let gib = (activations + parameters + tapes) / Double(1 << 30)
        try check(gib <= Double(Wire.maximumThreadMemoryGiB),
                  String(format: "the run would need %.1f GiB per compute thread (at most %d)%@", gib, Wire.maximumThreadMemoryGiB,
                         kept > 0 ? keptSteps.map { " with --keep-steps \($0) (\(kept) kept steps); lower it" } ?? "" : ""))

        let d = w.dataset
        guard let kind = DatasetSpec.Kind(rawValue: d.kind) else { throw .malformed("run specification: unknown dataset kind '\(d.kind.prefix(40))'") }
        // The name is joined to --data-root: one plain path component, nothing that climbs out.
        try check(!d.name.isEmpty && d.name.utf8.count <= 255 && !d.name.contains("/") && !d.name.contains("\0")
                  && d.name != "." && d.name != "..", "dataset name '\(d.name.prefix(40))' is not one folder name")
        try check(d.path.utf8.count <= 4096 && !d.path.contains("\0") && d.identityName.utf8.count <= 255 && d.fingerprint.utf8.count <= 128,
                  "dataset path or identity too long")
        guard let axis = SliceAxis(rawValue: d.axis) else { throw .malformed("run specification: unknown axis '\(d.axis.prefix(40))'") }
        try check((16...1024).contains(d.size) && d.size == m.height && d.size == m.width, "image size \(d.size) does not match the model")
        var options = VolumeOptions()
        options.axis = axis
        options.size = d.size
        switch (d.normalisation.kind, d.normalisation.low, d.normalisation.high, d.normalisation.level, d.normalisation.width) {
        case ("zscore", let low?, let high?, _, _):
            try check(low.isFinite && high.isFinite && 0 <= low && low <= high && high <= 100, "percentiles out of range")
            options.normalisation = .zscore(lowPercentile: low, highPercentile: high)
        case ("ctWindow", _, _, let level?, let width?):
            try check(level.isFinite && width.isFinite && width > 0, "CT window out of range")
            options.normalisation = .ctWindow(level: level, width: width)
        default:
            throw .malformed("run specification: bad intensity normalisation")
        }
        options.requireLabel = d.requireLabel
        options.sameVolume = d.sameVolume
        options.separateVolumes = d.separateVolumes ?? false
        options.augment = d.augment
        options.skipBad = d.skipBad
        if let mm = d.spacing {
            try check(mm.isFinite && (0.001...1000).contains(mm), "resampling spacing out of range")
            options.resampling = .spacing(mm)
        }
        var dataset = DatasetSpec(kind: kind, name: d.name, path: d.path, options: options,
                                  identity: DatasetIdentity(name: d.identityName, fingerprint: d.fingerprint))
        try check(d.pseudo == nil || d.pseudoBesideTasks == nil, "pseudo-tasks both instead of and beside the labelled tasks")
        dataset.pseudo = try d.pseudo.map(Self.pseudoOptions)
        dataset.pseudoBesideTasks = try d.pseudoBesideTasks.map(Self.pseudoOptions)
        dataset.includeTrainingImages = d.includeTrainingImages
        try check(d.unionBesideTasks != true || (d.pseudo == nil && d.pseudoBesideTasks == nil),
                  "union tasks beside pseudo-tasks (union tasks unite labelled tasks only)")
        dataset.unionBesideTasks = d.unionBesideTasks ?? false

        let h = w.heldOut
        try check((1...256).contains(h.support) && (0...256).contains(h.query) && (0...10_000).contains(h.perTask),
                  "held-out shots or instances out of range")
        try check(h.steps.map { (0...10_000).contains($0) } ?? true, "held-out inner steps out of range")
        try check(w.testPatterns.count + w.validationPatterns.count <= 1000, "too many held-out patterns")
        if kind == .synthetic {
            try check(SyntheticFamily.Variant(rawValue: d.path) != nil, "unknown synthetic family '\(d.path.prefix(40))'")
        }
        try check((kind == .universe) == (d.universe != nil), "universe settings with another dataset kind, or none for the universe")
        if let u = d.universe {
            try check(d.path == "universe" && u.types.map { (1...100_000).contains($0) } ?? true, "universe settings out of range")
            try check(d.pseudo == nil && d.pseudoBesideTasks == nil && d.unionBesideTasks != true, "task augmentation of other kinds in the universe")
            dataset.universe = TaskUniverse.Options(types: u.types, metaAugmentation: u.metaAugmentation, seed: u.seed)
        }
        var evaluation = EvaluationSpec()
        evaluation.seed = h.seed
        evaluation.support = h.support
        evaluation.query = h.query
        evaluation.steps = h.steps
        evaluation.perTask = h.perTask

        let n = w.numerics
        guard let kernels = NumericsSettings.CPUKernels(rawValue: n.cpuKernels), let library = BLAS.Backend(rawValue: n.matrixLibrary)
        else { throw .malformed("run specification: unknown numerics '\(n.cpuKernels.prefix(20))', '\(n.matrixLibrary.prefix(20))'") }
        let convolution = try n.convolution.map { name throws(WireError) -> BLAS.ConvolutionPath in
            guard let path = BLAS.ConvolutionPath(rawValue: name) else { throw .malformed("run specification: unknown convolution path '\(name.prefix(20))'") }
            return path
        }
        let precision = try n.precision.map { name throws(WireError) -> BLAS.Precision in
            guard let precision = BLAS.Precision(rawValue: name), precision != .float32 else {
                throw .malformed("run specification: unknown precision '\(name.prefix(20))'")
            }
            return precision
        } ?? .float32
        // No path named: a coordinator from before Winograd was a default.
        let numerics = NumericsSettings(cpuKernels: kernels, matrixLibrary: library, convolution: convolution, precision: precision,
                                        keptSteps: n.keptSteps).recorded

        var training = TrainingConfig(meta: meta)
        training.seed = w.seed
        training.initSeed = w.initSeed
        self.init(runID: w.runID, training: training, dataset: dataset,
                  split: TaskSplit(validationPatterns: w.validationPatterns, testPatterns: w.testPatterns),
                  evaluation: evaluation, numerics: numerics)
    }
}
