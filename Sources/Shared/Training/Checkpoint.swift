import Core
import Foundation
import MetaLearning

/// A training checkpoint: everything needed to continue a run bit for bit.
///
/// One safetensors file: the meta-parameters by name (loadable into PyTorch as a state
/// dict), Adam's moments as `optimizer.m.<name>` and `optimizer.v.<name>`, and metadata with
/// the format, the outer step, Adam's update count, the run id and the run's full
/// specification (JSON). Meta-batches are a pure function of the seed and the step, so no
/// sampler state beyond the step is needed. Files are `checkpoint-<step>.safetensors`,
/// written atomically (temporary file, fsync, rename, fsync of the folder).
public struct Checkpoint {
    public static let format = "medmaml-checkpoint-1"

    public var run: RunSpec
    public var step: Int
    public var meta: [Float]
    public var optimizer: Adam.State
    /// The effective configuration of the command that made it (YAML), if known: a run can be
    /// reproduced or resumed elsewhere from its output folder alone.
    public var runFile: String?

    public init(run: RunSpec, step: Int, meta: [Float], optimizer: Adam.State) {
        self.run = run
        self.step = step
        self.meta = meta
        self.optimizer = optimizer
    }

    public func file() throws -> Safetensors.File {
        let layout = try MetaLayout(config: run.training.meta)
        let spec = String(decoding: try canonicalJSON(run), as: UTF8.self)
        return Safetensors.File(
            tensors: ParameterFile.tensors(meta, layout: layout)
                + ParameterFile.tensors(optimizer.m, layout: layout, prefix: "optimizer.m.")
                + ParameterFile.tensors(optimizer.v, layout: layout, prefix: "optimizer.v."),
            metadata: ["format": Self.format, "step": "\(step)", "adam_step": "\(optimizer.step)",
                       "run_id": run.runID, "run_spec": spec].merging(runFile.map { ["run_file": $0] } ?? [:]) { a, _ in a })
    }

    /// Writes atomically (the previous file stays if anything fails). Refuses a state with a
    /// non-finite value: no checkpoint ever holds one.
    public func write(to path: String) throws {
        guard meta.allSatisfy(\.isFinite), optimizer.m.allSatisfy(\.isFinite), optimizer.v.allSatisfy(\.isFinite) else {
            throw SafetensorsError.unwritable(path: path, reason: "the state holds non-finite values; no checkpoint is written from it")
        }
        try Safetensors.write(try file(), to: path)
    }

    /// Reads a checkpoint, checking that every tensor is there with its shape.
    public static func read(path: String) throws -> Checkpoint {
        let file = try Safetensors.read(path: path)
        guard file.metadata["format"] == format else {
            throw SafetensorsError.corrupt(path: path, reason: "not a MedMAML checkpoint (format \(file.metadata["format"] ?? "missing"))")
        }
        guard let specText = file.metadata["run_spec"], let step = Int(file.metadata["step"] ?? ""),
              let adamStep = Int(file.metadata["adam_step"] ?? ""), step >= 0, adamStep >= 0
        else { throw SafetensorsError.corrupt(path: path, reason: "checkpoint metadata is incomplete") }
        let run: RunSpec
        do { run = try canonicalDecoder().decode(RunSpec.self, from: Data(specText.utf8)) } catch {
            throw SafetensorsError.corrupt(path: path, reason: "run specification does not decode: \(error)")
        }
        try run.training.validate()
        let layout = try MetaLayout(config: run.training.meta)
        let meta = try ParameterFile.load(file, layout: layout, path: path)
        var state = Adam.State(count: layout.count)
        state.step = adamStep
        for t in layout.tensors {
            for (prefix, keyPath) in [("optimizer.m.", \Adam.State.m), ("optimizer.v.", \Adam.State.v)] {
                let tensor = try file.require(prefix + t.name, in: path)
                guard tensor.shape == t.shape else {
                    throw SafetensorsError.shapeMismatch(path: path, name: prefix + t.name, expected: t.shape, found: tensor.shape)
                }
                guard tensor.values.allSatisfy(\.isFinite) else {
                    throw SafetensorsError.corrupt(path: path, reason: "tensor '\(prefix + t.name)' has non-finite values")
                }
                state[keyPath: keyPath].replaceSubrange(t.range, with: tensor.values)
            }
        }
        var checkpoint = Checkpoint(run: run, step: step, meta: meta, optimizer: state)
        checkpoint.runFile = file.metadata["run_file"]
        return checkpoint
    }

    /// The file name of step `step`'s checkpoint.
    public static func fileName(step: Int) -> String { String(format: "checkpoint-%08d.safetensors", step) }

    /// The checkpoint files in `folder`, newest (highest step) first.
    public static func files(in folder: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return files.filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".safetensors") }.sorted().reversed().map { folder + "/" + $0 }
    }

    /// The newest checkpoint in `folder` that reads and holds only finite values, with its
    /// path; older ones are tried when a newer one is unreadable, and each refusal is
    /// reported to `skipped` (path, reason). Nil if no checkpoint is usable.
    public static func newestUsable(in folder: String, skipped: (String, String) -> Void) -> (path: String, checkpoint: Checkpoint)? {
        for path in files(in: folder) {
            do { return (path, try read(path: path)) } catch { skipped(path, "\(error)") }
        }
        return nil
    }

    /// Deletes all but the newest `keep` checkpoints in `folder`.
    public static func prune(_ folder: String, keep: Int) {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".safetensors") }.sorted()
        for f in files.dropLast(keep) { try? FileManager.default.removeItem(atPath: folder + "/" + f) }
    }
}
