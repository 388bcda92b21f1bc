/// A model as data: a directed acyclic graph of layers over one image input.
///
/// Node 0 is the input; every other node names its inputs by index (always earlier nodes),
/// and the last node is the output (the logits). The spec travels in checkpoints and over
/// the wire, so `validate()` checks it fully and throws instead of trapping.
public struct ModelSpec: Codable, Hashable, Sendable {
    /// The layer kinds a node can be. Adding a layer type adds one case here.
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
            let ins = node.inputs.map { shapes[$0] }
            func single() throws(ModelError) -> FeatureShape {
                guard ins.count == 1 else {
                    throw .invalid("node '\(node.name)' takes one input, got \(ins.count)")
                }
                return ins[0]
            }
            let out: FeatureShape
            switch node.op {
            case .input:
                throw .invalid("node \(index) '\(node.name)': only node 0 may be the input")
            case .conv2d(let outChannels, let kernel, _):
                let x = try single()
                guard outChannels > 0, outChannels <= 4096, kernel > 0, kernel % 2 == 1, kernel <= 7
                else { throw .invalid("conv '\(node.name)': bad channels \(outChannels) or kernel \(kernel)") }
                out = FeatureShape(channels: outChannels, height: x.height, width: x.width)
            case .groupNorm(let groups, let epsilon):
                let x = try single()
                guard groups > 0, x.channels % groups == 0, epsilon > 0, epsilon.isFinite else {
                    throw .invalid("groupnorm '\(node.name)': \(x.channels) channels in \(groups) groups")
                }
                out = x
            case .relu:
                out = try single()
            case .maxPool2:
                let x = try single()
                guard x.height % 2 == 0, x.width % 2 == 0 else {
                    throw .invalid("maxpool '\(node.name)': odd size \(x)")
                }
                out = FeatureShape(channels: x.channels, height: x.height / 2, width: x.width / 2)
            case .upsample2:
                let x = try single()
                out = FeatureShape(channels: x.channels, height: 2 * x.height, width: 2 * x.width)
            case .concat:
                guard ins.allSatisfy({ $0.height == ins[0].height && $0.width == ins[0].width }) else {
                    throw .invalid("concat '\(node.name)': inputs differ in size \(ins)")
                }
                out = FeatureShape(
                    channels: ins.reduce(0) { $0 + $1.channels }, height: ins[0].height,
                    width: ins[0].width)
            }
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
    public func parameterShapes() throws(ModelError) -> [(name: String, shape: [Int])] {
        let shapes = try validate()
        var result: [(name: String, shape: [Int])] = []
        for (index, node) in nodes.enumerated() {
            switch node.op {
            case .conv2d(let o, let k, let bias):
                let c = shapes[node.inputs[0]].channels
                result.append((node.name + ".weight", [o, c, k, k]))
                if bias { result.append((node.name + ".bias", [o])) }
            case .groupNorm:
                let c = shapes[index].channels
                result.append((node.name + ".weight", [c]))
                result.append((node.name + ".bias", [c]))
            default:
                break
            }
        }
        return result
    }
}

/// A model description that cannot be built.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let why): "invalid model: \(why)"
        }
    }
}
