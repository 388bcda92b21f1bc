import Datasets
import Engine
import Foundation
import MetaLearning

/// A run's whole specification, one versioned schema: its id, the training configuration, the
/// dataset with its preprocessing, the meta-train/meta-test split, the held-out evaluation
/// settings, and the numerics settings every process of the run computes with. Stored in
/// checkpoints and final.safetensors; workers receive its wire form (`Wire.RunSpecification`)
/// when they register.
public struct RunSpec: Codable, Sendable {
    /// The schema's version: 2 added the numerics settings and the datasets' resampling; 3
    /// their precision (absent in 2: Float32).
    public static let schemaVersion = 3

    public var schema: Int
    public var runID: String
    public var training: TrainingConfig
    public var dataset: DatasetSpec
    public var split: TaskSplit
    public var evaluation: EvaluationSpec
    public var numerics: NumericsSettings

    public init(runID: String, training: TrainingConfig, dataset: DatasetSpec, split: TaskSplit, evaluation: EvaluationSpec,
                numerics: NumericsSettings = NumericsSettings.applied ?? NumericsSettings()) {
        schema = Self.schemaVersion
        self.runID = runID
        self.training = training
        self.dataset = dataset
        self.split = split
        self.evaluation = evaluation
        self.numerics = numerics
    }

    private enum CodingKeys: String, CodingKey { case schema, runID, training, dataset, split, evaluation, numerics }

    /// Specifications of schema 1 (before numerics travelled) read with the settings their
    /// processes took from the environment; a newer schema is refused with the reason.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decodeIfPresent(Int.self, forKey: .schema) ?? 1
        guard schema <= Self.schemaVersion else {
            throw DecodingError.dataCorruptedError(forKey: .schema, in: c,
                                                   debugDescription: "run specification schema \(schema) is newer than this MedMAML's \(Self.schemaVersion); upgrade MedMAML")
        }
        runID = try c.decode(String.self, forKey: .runID)
        training = try c.decode(TrainingConfig.self, forKey: .training)
        dataset = try c.decode(DatasetSpec.self, forKey: .dataset)
        split = try c.decode(TaskSplit.self, forKey: .split)
        evaluation = try c.decode(EvaluationSpec.self, forKey: .evaluation)
        numerics = try c.decodeIfPresent(NumericsSettings.self, forKey: .numerics) ?? NumericsSettings.fromEnvironment.recorded
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
