import Core
import Datasets
import MetaLearning
import Evaluation
import Foundation

/// Everything a study has measured so far, saved after every stage (`state.json`), so an
/// interrupted study resumes where it stopped and a finished one can be read back.
struct StudyState: Codable {
    /// A trained candidate: its snapshots along the budget.
    struct Trained: Codable {
        /// Fraction of the budget at each snapshot, and the file holding its parameters.
        var fractions: [Double] = []
        var files: [String] = []
        /// Compute spent at each snapshot: core-seconds, task samples processed, and
        /// training steps (of every phase).
        var coreSeconds: [Double] = []
        var taskSamples: [Int] = []
        var steps: [Int] = []

        mutating func append(fraction: Double, file: String, coreSeconds c: Double, taskSamples n: Int, steps s: Int) {
            fractions.append(fraction)
            files.append(file)
            coreSeconds.append(c)
            taskSamples.append(n)
            steps.append(s)
        }
    }

    /// A candidate's meta-validation Dice for every snapshot (rows) and adaptation setting of
    /// its grid (columns), and the best pair.
    struct Tuned: Codable {
        var dice: [[Double]]
        var bestSnapshot: Int
        var bestSetting: Int
    }

    /// The chosen candidate, snapshot and setting of a family.
    struct Choice: Codable {
        var candidate: String
        var snapshot: Int
        var setting: Int
        var validationDice: Double
    }

    /// Everything that decides a study's results; a folder holding a study with another
    /// fingerprint is not continued.
    struct Fingerprint: Codable, Equatable {
        var plan: StudyPlan
        var config: TrainingConfig
        var dataset: String
        var split: TaskSplit
        var budget: Double
        var fractions: [Double]
        var shots: [Int]
        var validationPerTask: Int
        var testPerTask: Int
    }

    /// A point of a curve: x (core-seconds, or shots) and the Dice with its 95% CI.
    struct Point: Codable {
        var x: Double
        var dice: MeanCI
    }

    var fingerprint: Fingerprint
    /// Core-seconds one training step costs, by kind of training (measured once).
    var stepCost: [String: Double] = [:]
    var trained: [String: Trained] = [:]
    /// Snapshots of a candidate whose training was interrupted.
    var partial: [String: Trained] = [:]
    var tuned: [String: Tuned] = [:]
    var chosen: [String: Choice] = [:]
    /// Meta-test results at the main shot count, by family.
    var test: [String: MetaTest.MethodResult] = [:]
    /// Paired differences on the meta-test instances: "a - b" -> mean and CI.
    var differences: [String: MeanCI] = [:]
    var budgetCurve: [String: [Point]] = [:]
    var shotsCurve: [String: [Point]] = [:]
    /// Wall-clock seconds of each stage.
    var stageSeconds: [String: Double] = [:]

    static func load(_ path: String) throws -> StudyState {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(StudyState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try encoder.encode(self), to: path)
    }
}
