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

    /// Writes a trained model as `load` reads it: the parameters by name, the run's
    /// specification, the step, the parameters' SHA-256 and (optionally) the effective run
    /// file and other notes.
    public static func write(_ meta: [Float], layout: MetaLayout, run: RunSpec, step: Int, runFile: String?,
                             notes: [String: String] = [:], to path: String) throws {
        var metadata = ["step": "\(step)", "run_id": run.runID, "run_spec": String(decoding: try canonicalJSON(run), as: UTF8.self),
                        "sha256": SHA256.hex(floats: meta)]
        if let runFile { metadata["run_file"] = runFile }
        metadata.merge(notes) { existing, _ in existing }
        try ParameterFile.write(meta, layout: layout, metadata: metadata, to: path)
    }
}
