import Core

/// A model as data: a directed acyclic graph of layers over one image input.
///
/// Node 0 is the input; every other node names its inputs by index (always earlier nodes),
/// and the last node is the output (the logits). The spec travels in checkpoints and over
/// the wire, so `validate()` checks it fully and throws instead of trapping.
public struct ModelSpec: Codable, Hashable, Sendable {
    /// The layer kinds a node can be. Adding a layer type adds one case here and one arm in
    /// `definition`; everything else about the layer lives in its own file.
    public enum Op: Codable, Hashable, Sendable {
        case input
        case conv2d(outChannels: Int, kernel: Int, bias: Bool)
        case groupNorm(groups: Int, epsilon: Double)
        case relu
        case maxPool2
        case upsample2
        case concat
    }

    public struct Node: Codable, Hashable, Sendable {
        /// Prefix of the node's parameter names (for example `e1a.conv`).
        public var name: String
        public var op: Op
        public var inputs: [Int]

        public init(name: String, op: Op, inputs: [Int]) {
            self.name = name
            self.op = op
            self.inputs = inputs
        }
    }

    /// A short identifier, for example `unet-w1`.
    public var name: String
    public var input: FeatureShape
    public var nodes: [Node]

    public init(name: String, input: FeatureShape, nodes: [Node]) {
        self.name = name
        self.input = input
        self.nodes = nodes
    }

    /// Per-node output shapes; throws `ModelError` if the graph is not well formed.
    public func validate() throws(ModelError) -> [FeatureShape] {
        guard let first = nodes.first, first.op == .input, first.inputs.isEmpty else {
            throw .invalid("node 0 must be the input")
        }
        guard input.channels > 0, input.height > 0, input.width > 0,
              input.count <= 1 << 26
        else { throw .invalid("input shape \(input) is out of range") }
        guard nodes.count >= 2, nodes.count <= 10_000 else {
            throw .invalid("a model needs between 2 and 10000 nodes, got \(nodes.count)")
        }
        var shapes = [input]
        var names = Set<String>()
        for (index, node) in nodes.enumerated().dropFirst() {
            guard names.insert(node.name).inserted else {
                throw .invalid("node name '\(node.name)' appears twice")
            }
            guard !node.inputs.isEmpty, node.inputs.allSatisfy({ $0 >= 0 && $0 < index }) else {
                throw .invalid("node \(index) '\(node.name)' must read earlier nodes")
            }
            guard let definition = node.op.definition else {
                throw .invalid("node \(index) '\(node.name)': only node 0 may be the input")
            }
            let out = try definition.outputShape(inputs: node.inputs.map { shapes[$0] }, node: node.name)
            guard out.count <= 1 << 26 else { throw .invalid("node '\(node.name)' is too large") }
            shapes.append(out)
        }
        let last = shapes[shapes.count - 1]
        guard last.channels == 1, last.height == input.height, last.width == input.width else {
            throw .invalid("the output must be one logit channel of the input size, got \(last)")
        }
        return shapes
    }

    /// The parameter tensors in layout order (names and shapes), without building a network.
    /// A tensor is named `<node name>.<suffix>`, for example `e1a.conv.weight`.
    public func parameterShapes() throws(ModelError) -> [(name: String, shape: [Int])] {
        let shapes = try validate()
        var result: [(name: String, shape: [Int])] = []
        for (index, node) in nodes.enumerated() {
            guard let definition = node.op.definition else { continue }
            for p in definition.parameterShapes(inputs: node.inputs.map { shapes[$0] }, output: shapes[index]) {
                result.append((node.name + "." + p.suffix, p.shape))
            }
        }
        return result
    }
}

extension ModelSpec.Op {
    /// The definition of the op's layer type (nil for the input): the one place where ops
    /// meet layer types.
    public var definition: (any LayerDefinition)? {
        switch self {
        case .input: nil
        case .conv2d(let outChannels, let kernel, let bias):
            Conv2dDefinition(outChannels: outChannels, kernel: kernel, bias: bias)
        case .groupNorm(let groups, let epsilon): GroupNormDefinition(groups: groups, epsilon: epsilon)
        case .relu: ReLUDefinition()
        case .maxPool2: MaxPoolDefinition()
        case .upsample2: UpsampleDefinition()
        case .concat: ConcatDefinition()
        }
    }
}
