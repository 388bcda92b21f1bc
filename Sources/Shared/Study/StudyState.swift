import Core
import Datasets
import MetaLearning
import Evaluation
import Foundation

/// Everything a study has measured so far, saved after every stage (`state.json`), so an
/// interrupted study resumes where it stopped and a finished one can be read back.
public struct StudyState: Codable, Sendable {
    /// A trained candidate: its snapshots along the budget.
    public struct Trained: Codable, Sendable, Equatable {
        /// Fraction of the budget at each snapshot, and the file holding its parameters.
        public var fractions: [Double] = []
        public var files: [String] = []
        /// Compute spent at each snapshot: core-seconds, task samples processed, and
        /// training steps (of every phase).
        public var coreSeconds: [Double] = []
        public var taskSamples: [Int] = []
        public var steps: [Int] = []

        public init() {}

        public mutating func append(fraction: Double, file: String, coreSeconds c: Double, taskSamples n: Int, steps s: Int) {
            fractions.append(fraction)
            files.append(file)
            coreSeconds.append(c)
            taskSamples.append(n)
            steps.append(s)
        }
    }

    /// A candidate's meta-validation Dice for every snapshot (rows) and adaptation setting of
    /// its grid (columns), and the best pair.
    public struct Tuned: Codable, Sendable, Equatable {
        public var dice: [[Double]]
        public var bestSnapshot: Int
        public var bestSetting: Int

        public init(dice: [[Double]], bestSnapshot: Int, bestSetting: Int) {
            self.dice = dice
            self.bestSnapshot = bestSnapshot
            self.bestSetting = bestSetting
        }
    }

    /// The chosen candidate, snapshot and setting of a family.
    public struct Choice: Codable, Sendable, Equatable {
        public var candidate: String
        public var snapshot: Int
        public var setting: Int
        public var validationDice: Double
    }

    /// Everything that decides a study's results; a folder holding a study with another
    /// fingerprint is not continued.
    public struct Fingerprint: Codable, Sendable, Equatable {
        public var plan: StudyPlan
        public var config: TrainingConfig
        public var dataset: String
        public var split: TaskSplit
        public var budget: Double
        public var fractions: [Double]
        public var shots: [Int]
        public var validationPerTask: Int
        public var testPerTask: Int
    }

    /// A point of a curve: x (core-seconds, or shots) and the Dice with its 95% CI.
    public struct Point: Codable, Sendable, Equatable {
        public var x: Double
        public var dice: MeanCI
    }

    public var fingerprint: Fingerprint
    /// Core-seconds one training step costs, by kind of training (measured once).
    public var stepCost: [String: Double] = [:]
    /// By candidate name.
    public var trained: [String: Trained] = [:]
    /// Snapshots of a candidate whose training was interrupted.
    public var partial: [String: Trained] = [:]
    public var tuned: [String: Tuned] = [:]
    public var chosen: [Family: Choice] = [:]
    /// Meta-test results at the main shot count, by family (and, in the pretraining study,
    /// the plain recipe's candidate name).
    public var test: [String: MetaTest.MethodResult] = [:]
    /// Paired differences on the meta-test instances: "a - b" -> mean and CI.
    public var differences: [String: MeanCI] = [:]
    public var budgetCurve: [Family: [Point]] = [:]
    public var shotsCurve: [Family: [Point]] = [:]
    /// Wall-clock seconds of each stage.
    public var stageSeconds: [String: Double] = [:]

    public init(fingerprint: Fingerprint) { self.fingerprint = fingerprint }

    public static func load(_ path: String) throws -> StudyState {
        try JSONFile.read(StudyState.self, from: path)
    }

    public func save(_ path: String) throws {
        try JSONFile.write(self, to: path)
    }
}
