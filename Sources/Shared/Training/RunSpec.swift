import Datasets
import Foundation
import MetaLearning

/// A run's whole specification: its id, the training configuration, the dataset, the
/// meta-train/meta-test split and the held-out evaluation settings. Stored in checkpoints;
/// workers receive its wire form (`Wire.RunSpecification`) when they register.
public struct RunSpec: Codable, Sendable {
    public var runID: String
    public var training: TrainingConfig
    public var dataset: DatasetSpec
    public var split: TaskSplit
    public var evaluation: EvaluationSpec

    public init(runID: String, training: TrainingConfig, dataset: DatasetSpec, split: TaskSplit, evaluation: EvaluationSpec) {
        self.runID = runID
        self.training = training
        self.dataset = dataset
        self.split = split
        self.evaluation = evaluation
    }

    /// A fresh run id: 128 bits from the operating system's secure random source, in hex.
    public static func randomID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    /// The task numbers of each role (meta-train, meta-validation, meta-test).
    public func partition(_ source: TaskSource) -> TaskSplit.Partition { split.partition(source.taskNames) }

    /// The learner configuration for evaluation (shots may differ from training).
    public var evaluationConfig: MetaConfig {
        var c = training.meta
        c.supportShots = evaluation.support
        c.queryShots = evaluation.query
        return c
    }
}
