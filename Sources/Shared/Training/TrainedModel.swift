import Core
import Foundation
import MetaLearning

/// A trained model for meta-testing: its meta-parameters and the run specification stored
/// with them (a checkpoint, or `final.safetensors`).
public struct TrainedModel: Sendable {
    public var run: RunSpec
    public var meta: [Float]
    public var config: MetaConfig { run.training.meta }

    public static func load(_ path: String) throws -> TrainedModel {
        let file = try Safetensors.read(path: path)
        guard let specText = file.metadata["run_spec"] else {
            throw SafetensorsError.corrupt(path: path, reason: "no run_spec metadata: not a MedMAML checkpoint or final.safetensors")
        }
        let run: RunSpec
        do { run = try canonicalDecoder().decode(RunSpec.self, from: Data(specText.utf8)) } catch {
            throw SafetensorsError.corrupt(path: path, reason: "run_spec does not decode: \(error)")
        }
        try run.training.validate()
        let layout = try MetaLayout(config: run.training.meta)
        return TrainedModel(run: run, meta: try ParameterFile.load(file, layout: layout, path: path))
    }
}
