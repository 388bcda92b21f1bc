import Core

/// Named views into one flat, contiguous parameter buffer.
///
/// The inner loop, the optimizer, checkpoints and the wire all work on the flat buffer;
/// names and shapes (PyTorch's, see docs/WORKLOADS.md) matter only at the edges.
public struct ParameterLayout: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
        public var range: Range<Int> { offset..<(offset + count) }
    }

    public let entries: [Entry]
    public let count: Int
    private let index: [String: Int]

    public init(_ tensors: [(name: String, shape: [Int])]) {
        var entries: [Entry] = []
        var offset = 0
        for t in tensors {
            entries.append(Entry(name: t.name, shape: t.shape, offset: offset))
            offset += t.shape.reduce(1, *)
        }
        self.entries = entries
        count = offset
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> Entry? {
        index[name].map { entries[$0] }
    }

    /// Initial parameters as PyTorch initialises the same modules: convolution weights and
    /// biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), GroupNorm
    /// weight 1 and bias 0. Deterministic from the seed.
    public func initialValues(seed: UInt64) -> [Float] {
        var rng = RandomStream(seed: seed, stream: 0x1417)
        var values = [Float](repeating: 0, count: count)
        var fanIn = 1
        for entry in entries {
            if entry.shape.count == 4 {
                fanIn = entry.shape[1] * entry.shape[2] * entry.shape[3]
                let bound = 1 / Float(fanIn).squareRoot()
                for i in entry.range { values[i] = rng.uniform(-bound, bound) }
            } else if entry.name.hasSuffix(".bias") && isConvBias(entry) {
                let bound = 1 / Float(fanIn).squareRoot()
                for i in entry.range { values[i] = rng.uniform(-bound, bound) }
            } else if entry.name.hasSuffix(".weight") {
                for i in entry.range { values[i] = 1 }
            }
        }
        return values
    }

    /// A bias directly after a 4-D weight of the same node belongs to a convolution.
    private func isConvBias(_ entry: Entry) -> Bool {
        let prefix = String(entry.name.dropLast(".bias".count))
        return self[prefix + ".weight"]?.shape.count == 4
    }
}
