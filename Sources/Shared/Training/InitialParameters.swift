import Core
import Foundation
import MetaLearning

/// Initial meta-parameters from a checkpoint or parameter file (`train --init-from`): the
/// model part by name; learned inner rates from the file when it has them, otherwise at the
/// inner learning rate.
public enum InitialParameters {
    public static func load(_ path: String, layout: MetaLayout, innerLearningRate: Float) throws -> [Float] {
        let file = try Safetensors.read(path: path)
        var values = layout.initialValues(seed: 0, innerLearningRate: innerLearningRate)
        for e in layout.model.entries {
            let t = try file.require(e.name, in: path)
            guard t.shape == e.shape else { throw SafetensorsError.shapeMismatch(path: path, name: e.name, expected: e.shape, found: t.shape) }
            guard t.values.allSatisfy(\.isFinite) else { throw SafetensorsError.corrupt(path: path, reason: "\(e.name) has non-finite values") }
            values.replaceSubrange(e.range, with: t.values)
        }
        for t in layout.tensors where t.name.hasPrefix("inner_lr.") {
            if let saved = file[t.name], saved.shape == t.shape { values.replaceSubrange(t.range, with: saved.values) }
        }
        return values
    }
}
