import Cluster
import Core
import Datasets
import Engine
import Evaluation
import Foundation
import Logging
import MetaLearning
import Training

/// The main job (`medmaml-coordinator demo`): the study protocol, small, on two splits of the
/// synthetic families, with one meta-learning recipe against the tuned transfer baselines
/// and scratch. Its model (32x32 U-Net, 8 base channels, meta-batch 4) and its step costs
/// are fixed, so its table is the same on any machine and any load.
public struct Demo {
    public struct Settings: Sendable {
        public var out: String
        /// The model, the task shape and the inner loop (the demo's: a 32x32 U-Net with 8 base
        /// channels, meta-batches of 4).
        public var base: TrainingConfig
        /// Budget, snapshots, shots and instances of each scenario's study.
        public var protocolSettings: StudyProtocol
        /// A MAML candidate of the standard plan.
        public var recipe = Demo.defaultRecipe
        public var transferLearningRate: Float = 1e-3
        public var scenarios = Demo.scenarios.map(\.name)

        public init(out: String, base: TrainingConfig, protocol p: StudyProtocol) {
            self.out = out
            self.base = base
            protocolSettings = p
        }

        /// Whether the model is the one `referenceCosts` were measured for.
        var hasReferenceModel: Bool {
            base.meta.model == UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8).spec && base.metaBatch == 4
        }
    }

    /// The demo's numerics: oneDNN's AVX2 kernels (its table the same on any x86-64 machine)
    /// and every inner step's passes kept.
    public static let numerics = NumericsSettings(cpuKernels: .avx2, keptSteps: 1000)

    /// The recipe the full study chose on meta-validation (README: docs/RESULTS.md).
    public static let defaultRecipe = "maml++-second"

    /// Core-seconds per training step of the demo's model, measured once by the study's
    /// calibration on a reference machine (AMD EPYC, oneDNN's AVX2 kernels; recipes added
    /// later scaled from their ratio to a calibrated recipe on a later machine). The demo
    /// converts its budget to step counts with these, so its table does not depend on the
    /// machine or its load.
    public static let referenceCosts: [String: Double] = [
        "joint-perTask": 0.078, "joint-shared": 0.0754, "meta-first": 0.2065, "meta-second": 0.589,
        "meta-second+lslr+msl": 0.862, "pretrain": 0.606, "meta-second+head": 0.090,
        "meta-second+pseudo": 0.589, "meta-reptile": 0.208, "meta-second+lslr+msl+proto": 0.901,
        "meta-second+head+proto": 0.090, "meta-second+lslr+msl+steps10": 1.668, "meta-second+lslr+msl+union": 0.878,
    ]

    /// The demo's comparisons: a name, the dataset, and what it shows.
    public static let scenarios: [(name: String, dataset: String, title: String)] = [
        ("conflicting", "synthetic-multi", "conflicting tasks: every structure labelled on the same images, the paired structure held out"),
        ("structure-style", "synthetic", "structure x style: the paired structure and the x-ray style held out"),
    ]

    /// The MAML candidates a demo can run.
    public static var recipes: [StudyPlan.Candidate] {
        StudyPlan.standard(pretraining: false).candidates.filter { $0.family == .maml }
    }

    public let settings: Settings
    public let launcher: TrainingLauncher
    public let logger: Logger
    /// Progress lines.
    public let say: @Sendable (String) -> Void

    public init(settings: Settings, launcher: TrainingLauncher, logger: Logger, say: @escaping @Sendable (String) -> Void) throws {
        guard Self.recipes.contains(where: { $0.name == settings.recipe }) else {
            throw StudyError("--recipe takes one of \(Self.recipes.map(\.name).joined(separator: ", "))")
        }
        guard settings.transferLearningRate.isFinite, settings.transferLearningRate > 0, settings.transferLearningRate < 1 else {
            throw StudyError("--transfer-lr takes a rate in (0, 1)")
        }
        guard !settings.scenarios.isEmpty, settings.scenarios.allSatisfy({ w in Self.scenarios.contains { $0.name == w } }) else {
            throw StudyError("--scenarios takes \(Self.scenarios.map(\.name).joined(separator: " and/or "))")
        }
        self.settings = settings
        self.launcher = launcher
        self.logger = logger
        self.say = say
    }

    /// Runs every scenario's study (continuing any left unfinished in the output folder) and
    /// writes summary.txt and results.json; returns the summary's text.
    public func run() throws -> String {
        let clock = MonotonicClock()
        guard let maml = Self.recipes.first(where: { $0.name == settings.recipe }) else { throw StudyError("no recipe \(settings.recipe)") }
        let plan = StudyPlan.demo(maml: maml, transferLearningRate: settings.transferLearningRate)
        var summary: [String] = []
        let size = settings.base.meta.model.input.height
        var results = DemoResults(recipe: settings.recipe, budgetCoreSeconds: settings.protocolSettings.budget, seed: settings.base.seed,
                                  imageSize: size, seconds: 0, scenarios: [:])
        for scenario in Self.scenarios where settings.scenarios.contains(scenario.name) {
            var options = VolumeOptions()
            options.size = size
            let (spec, source) = try DatasetSpec.open(scenario.dataset, options: options, logger: logger)
            var study = StudyRunner.Settings(out: settings.out + "/" + scenario.name, base: settings.base, dataset: spec,
                                             split: source.defaultSplit, protocol: settings.protocolSettings)
            study.threads = launcher.settings.hostThreads
            if study.costs == nil && settings.hasReferenceModel { study.costs = Self.referenceCosts }
            say("demo: \(scenario.title)")
            let runner = try StudyRunner(settings: study, plan: plan, source: source, launcher: launcher, logger: logger, say: say)
            try runner.run()
            let headline = Self.headline(runner.state, scenario: scenario.name, shots: study.shots, mainShots: study.mainShots)
            summary.append(contentsOf: headline.text)
            results.scenarios[scenario.name] = headline.results
        }
        let header = [
            "MedMAML demo: \(settings.recipe) against tuned transfer learning and scratch, \(Int(settings.protocolSettings.budget)) core-seconds of training each, every setting chosen on meta-validation, meta-test once",
            "",
        ]
        let text = (header + summary).joined(separator: "\n")
        try TextFile.write(text, to: settings.out + "/summary.txt")
        results.seconds = Int(clock.now)
        try JSONFile.write(results, to: settings.out + "/results.json")
        return text
    }

    /// The lines of one scenario in the summary: each method's 5-shot Dice, MAML's paired
    /// difference against each baseline, and Dice against K.
    public static func headline(_ state: StudyState, scenario: String, shots: [Int], mainShots: Int) -> (text: [String], results: DemoResults.Scenario) {
        var lines = ["\(scenario) (meta-test, \(mainShots)-shot, Dice with 95% CI):"]
        var methods: [Family: DemoResults.Method] = [:]
        for family in Family.main {
            guard let r = state.test[family.rawValue] else { continue }
            let candidate = state.chosen[family]?.candidate ?? family.rawValue
            lines.append("  " + family.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "%.3f ± %.3f", r.dice.mean, r.dice.halfWidth) + "   (\(candidate))")
            var perK: [Int: Double] = [:]
            for p in state.shotsCurve[family] ?? [] { perK[Int(p.x)] = p.dice.mean }
            methods[family] = DemoResults.Method(dice: r.dice, candidate: candidate, diceByShots: perK)
        }
        for (name, d) in state.differences.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + d.differenceText)
        }
        for k in shots {
            let row = Family.main.compactMap { family in
                state.shotsCurve[family]?.first { $0.x == Double(k) }.map { "\(family.rawValue) " + String(format: "%.3f", $0.dice.mean) }
            }
            lines.append("  K=\(k): " + row.joined(separator: ", "))
        }
        lines.append("")
        return (lines, DemoResults.Scenario(methods: methods, pairedDifferences: state.differences))
    }
}

/// The demo's `results.json`: per scenario, each method's 5-shot Dice with its CI, the chosen
/// candidate and Dice at each K, and MAML's paired differences.
public struct DemoResults: Codable, Sendable {
    public struct Method: Codable, Sendable {
        public var dice: MeanCI
        public var candidate: String
        public var diceByShots: [Int: Double]
    }

    public struct Scenario: Codable, Sendable {
        public var methods: [Family: Method]
        public var pairedDifferences: [String: MeanCI]
    }

    public var recipe: String
    public var budgetCoreSeconds: Double
    public var seed: UInt64
    public var imageSize: Int
    public var seconds: Int
    public var scenarios: [String: Scenario]
}
