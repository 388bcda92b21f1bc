import Core

/// Named meta-parameters to and from safetensors, by the names of `MetaLayout.tensors`
/// (the PyTorch module's names, plus `inner_lr.<name>` for learned inner rates).
public enum ParameterFile {
    /// The `format` metadata of every parameter file MedMAML writes.
    public static let format = "medmaml-parameters-1"

    /// Writes meta-parameters by name (a PyTorch state dict, plus any learned inner rates) with
    /// `metadata` and the format tag, atomically: the one writer of parameter files
    /// (final.safetensors, a study's snapshots, a pretext's model).
    public static func write(_ values: [Float], layout: MetaLayout, metadata: [String: String], to path: String) throws {
        try Safetensors.write(Safetensors.File(tensors: tensors(values, layout: layout),
                                               metadata: metadata.merging(["format": format]) { _, tag in tag }),
                              to: path)
    }

    /// Reads the meta-parameters of `layout` from a file holding exactly its tensors.
    /// Throws naming the first missing, unexpected or misshapen tensor.
    public static func load(_ file: Safetensors.File, layout: MetaLayout, path: String) throws(SafetensorsError) -> [Float] {
        var values = [Float](repeating: 0, count: layout.count)
        let expected = layout.tensors
        for t in expected {
            let tensor = try file.require(t.name, in: path)
            guard tensor.shape == t.shape else {
                throw .shapeMismatch(path: path, name: t.name, expected: t.shape, found: tensor.shape)
            }
            guard tensor.values.allSatisfy(\.isFinite) else {
                throw .corrupt(path: path, reason: "tensor '\(t.name)' has non-finite values")
            }
            values.replaceSubrange(t.range, with: tensor.values)
        }
        let names = Set(expected.map(\.name))
        if let extra = file.tensors.first(where: { !names.contains($0.name) && !$0.name.hasPrefix("optimizer.") }) {
            throw .corrupt(path: path, reason: "unexpected tensor '\(extra.name)' for model \(layout.model.entries.count) tensors")
        }
        return values
    }

    /// The tensors of a flat meta-parameter (or gradient) buffer, optionally prefixed.
    public static func tensors(_ values: [Float], layout: MetaLayout, prefix: String = "") -> [(name: String, tensor: Safetensors.Tensor)] {
        precondition(values.count == layout.count, "buffer size mismatch")
        return layout.tensors.map { (prefix + $0.name, Safetensors.Tensor(shape: $0.shape, values: Array(values[$0.range]))) }
    }

    /// The meta-parameters in Float64 (exact from F64 tensors), checked as `load` checks them.
    public static func loadFloat64(_ file: Safetensors.File, layout: MetaLayout, path: String) throws(SafetensorsError) -> [Double] {
        _ = try load(file, layout: layout, path: path)
        var values = [Double](repeating: 0, count: layout.count)
        for t in layout.tensors {
            let doubles = try file.require(t.name, in: path).doubles
            guard doubles.allSatisfy(\.isFinite) else { throw .corrupt(path: path, reason: "tensor '\(t.name)' has non-finite values") }
            values.replaceSubrange(t.range, with: doubles)
        }
        return values
    }

    /// Float64 tensors (written as F64) of a flat buffer.
    public static func tensors(float64 values: [Double], layout: MetaLayout) -> [(name: String, tensor: Safetensors.Tensor)] {
        precondition(values.count == layout.count, "buffer size mismatch")
        return layout.tensors.map { ($0.name, Safetensors.Tensor(shape: $0.shape, float64: Array(values[$0.range]))) }
    }
}
