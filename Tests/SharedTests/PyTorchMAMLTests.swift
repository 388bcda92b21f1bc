import Core
import Engine
import MetaLearning
import Testing
import TestSupport

/// W1 meta-gradients against an independent PyTorch MAML (autograd, create_graph=True),
/// fixtures from Tests/Reference/make_maml_fixtures.py, computed in float64.
///
/// Compared in Float64: W1's gradient jumps at ReLU/max-pool kinks that float32 rounding
/// crosses, so 5-step float32 trajectories of any two implementations (PyTorch float32
/// against its own float64 included: O(1) apart on this task) are not comparable. The
/// learner is generic, so the Float64 run checks the same code the Float32 one executes.
@Suite(.serialized) struct PyTorchMAMLTests {
    static let file = Result { try Safetensors.read(path: fixturePath("maml_w1.safetensors")) }
    // Ten times stricter than the 1e-3 asked for; the second-order sweep amplifies summation-order
    // differences between the two frameworks to ~1e-4 even in Float64.
    static let tolerance = 1e-4

    static func task() throws -> TaskSample {
        let f = try file.get()
        return TaskSample(
            shape: FeatureShape(channels: 1, height: 64, width: 64),
            supportImages: try f.require("support.images", in: "fixture").values,
            supportMasks: try f.require("support.masks", in: "fixture").values,
            queryImages: try f.require("query.images", in: "fixture").values,
            queryMasks: try f.require("query.masks", in: "fixture").values)
    }

    func run(_ order: MetaOrder, learnedRates: Bool = false, multiStep: Bool = false, step: Int = 0, headOnly: Bool = false,
             prototypeHead: Bool = false)
        throws -> (gradient: [Double], stats: MetaLearner<Double>.Stats, layout: MetaLayout)
    {
        var config = MetaConfig()
        config.order = order
        config.prototypeHead = prototypeHead
        if headOnly {
            config.headOnlyInnerLoop = true
            config.innerLearningRate = 0.5  // ANIL_RATE of the reference
        }
        config.learnedInnerRates = learnedRates
        config.multiStepLoss = multiStep
        config.multiStepAnnealSteps = 100
        let learner = try MetaLearner<Double>(config: config)
        var meta = ReferenceFormula.parameters(learner.layout.model, gain: 6.0.squareRoot())
        if learnedRates { meta += ReferenceFormula.rates(learner.layout.model, steps: 5) }
        var g = [Double](repeating: 0, count: learner.layout.count)
        let stats = learner.metaGradient(meta: meta.map(Double.init), task: try Self.task(), step: step, into: &g)
        return (g, stats, learner.layout)
    }

    func expected(_ prefix: String, _ layout: ParameterLayout) throws -> [Double] {
        try ReferenceFormula.flat(try Self.file.get(), prefix: prefix + ".", layout: layout).map(Double.init)
    }

    func scalar(_ name: String) throws -> Float { try Self.file.get().require(name, in: "fixture").values[0] }

    @Test func secondOrderMatchesPyTorch() throws {
        let (g, stats, layout) = try run(.second)
        let e = try expected("second", layout.model)
        #expect(relativeL2(g, e) < Self.tolerance, "second order rel. error \(relativeL2(g, e))")
        #expect(abs(stats.queryLoss - (try scalar("second.query_loss"))) < 1e-6)
        // The first-order gradient is far from it: the check can tell the two apart.
        #expect(relativeL2(try expected("first", layout.model), e) > 0.1)
    }

    @Test func firstOrderMatchesPyTorch() throws {
        let (g, _, layout) = try run(.first)
        let e = try expected("first", layout.model)
        #expect(relativeL2(g, e) < Self.tolerance, "first order rel. error \(relativeL2(g, e))")
    }

    @Test func learnedRatesAndMultiStepLossMatchPyTorch() throws {
        let (g, stats, layout) = try run(.second, learnedRates: true, multiStep: true, step: 30)
        let n = layout.model.count
        let e = try expected("lslr_msl", layout.model)
        #expect(relativeL2(Array(g[..<n]), e) < Self.tolerance, "model part \(relativeL2(Array(g[..<n]), e))")
        let rates = try layout.model.entries.flatMap {
            try Self.file.get().require("lslr_msl.inner_lr." + $0.name, in: "fixture").values.map(Double.init)
        }
        #expect(relativeL2(Array(g[n...]), rates) < Self.tolerance, "rates \(relativeL2(Array(g[n...]), rates))")
        #expect(abs(stats.objective - (try scalar("lslr_msl.objective"))) < 1e-6)
    }

    @Test func firstOrderRateGradientsMatchPyTorch() throws {
        let (g, _, layout) = try run(.first, learnedRates: true, multiStep: true, step: 30)
        let rates = try layout.model.entries.flatMap {
            try Self.file.get().require("lslr_msl_first.inner_lr." + $0.name, in: "fixture").values.map(Double.init)
        }
        let ours = Array(g[layout.model.count...])
        #expect(relativeL2(ours, rates) < Self.tolerance, "rate gradients \(relativeL2(ours, rates))")
    }

    /// The whole meta-gradient and the query loss of one configuration against fixture `prefix`.
    func expectMatch(_ prefix: String, _ order: MetaOrder, headOnly: Bool = false, prototypeHead: Bool = false) throws {
        let (g, stats, layout) = try run(order, headOnly: headOnly, prototypeHead: prototypeHead)
        let e = try expected(prefix, layout.model)
        #expect(relativeL2(g, e) < Self.tolerance, "\(prefix) rel. error \(relativeL2(g, e))")
        #expect(abs(stats.queryLoss - (try scalar(prefix + ".query_loss"))) < 1e-6)
    }

    /// ANIL, computed on the body's features (`HeadInnerLoop`), against PyTorch's autograd
    /// through head-only inner steps.
    @Test func headOnlyInnerLoopMatchesPyTorch() throws {
        try expectMatch("anil", .second, headOnly: true)
        try expectMatch("anil_first", .first, headOnly: true)
        // Second and first order are far apart here, and ANIL is far from full MAML.
        let layout = try MetaLayout(config: MetaConfig()).model
        #expect(relativeL2(try expected("anil_first", layout), try expected("anil", layout)) > 0.1)
        #expect(relativeL2(try expected("second", layout), try expected("anil", layout)) > 0.1)
    }

    /// Proto-MAML and Proto-ANIL against PyTorch's autograd through the prototypes and the
    /// inner steps (the features by a forward hook, the class means by masked sums).
    @Test func prototypeHeadMatchesPyTorch() throws {
        try expectMatch("proto", .second, prototypeHead: true)
        try expectMatch("proto_first", .first, prototypeHead: true)
        try expectMatch("proto_anil", .second, headOnly: true, prototypeHead: true)
        // The prototypes move the gradient far from plain MAML's and ANIL's.
        let layout = try MetaLayout(config: MetaConfig()).model
        #expect(relativeL2(try expected("second", layout), try expected("proto", layout)) > 0.1)
        #expect(relativeL2(try expected("anil", layout), try expected("proto_anil", layout)) > 0.1)
    }
}
