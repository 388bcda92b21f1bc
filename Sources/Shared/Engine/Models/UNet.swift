import Core

/// A configurable 2D U-Net of conv3x3 -> GroupNorm -> ReLU blocks (two per level),
/// max-pool down, nearest-neighbour up, skip connections by channel concatenation
/// (upsampled channels first) and a 1x1 convolution head producing one logit channel.
///
/// The default configuration is exactly W1 (`unet-w1`, 118,625 parameters), with the
/// parameter names of the obvious PyTorch module: `e1a.conv.weight`, `e1a.gn.weight`, ...
public struct UNetConfig: Codable, Hashable, Sendable {
    public var inputChannels = 1
    public var height = 64
    public var width = 64
    /// Number of 2x2 down-samplings.
    public var depth = 2
    /// Channels of the first level; each level down doubles them.
    public var baseChannels = 16
    public var groups = 4
    public var epsilon = 1e-5

    public init(inputChannels: Int = 1, height: Int = 64, width: Int = 64, depth: Int = 2,
                baseChannels: Int = 16, groups: Int = 4, epsilon: Double = 1e-5) {
        self.inputChannels = inputChannels
        self.height = height
        self.width = width
        self.depth = depth
        self.baseChannels = baseChannels
        self.groups = groups
        self.epsilon = epsilon
    }

    /// W1 from `docs/WORKLOADS.md`.
    public static let w1 = UNetConfig()

    /// The model graph.
    public var spec: ModelSpec {
        var nodes = [ModelSpec.Node(name: "input", op: .input, inputs: [])]
        func add(_ name: String, _ op: ModelSpec.Op, _ inputs: [Int]) -> Int {
            nodes.append(.init(name: name, op: op, inputs: inputs))
            return nodes.count - 1
        }
        func block(_ name: String, _ x: Int, _ channels: Int) -> Int {
            let c = add(name + ".conv", .conv2d(outChannels: channels, kernel: 3, bias: true), [x])
            let g = add(name + ".gn", .groupNorm(groups: groups, epsilon: epsilon), [c])
            return add(name + ".relu", .relu, [g])
        }
        func channels(_ level: Int) -> Int { baseChannels << (level - 1) }
        var x = 0
        var skips: [Int] = []
        for level in 1...max(depth, 1) where depth > 0 {
            if level > 1 { x = add("pool\(level - 1)", .maxPool2, [x]) }
            x = block("e\(level)a", x, channels(level))
            x = block("e\(level)b", x, channels(level))
            skips.append(x)
        }
        if depth > 0 { x = add("pool\(depth)", .maxPool2, [x]) }
        x = block("ba", x, baseChannels << depth)
        x = block("bb", x, baseChannels << depth)
        for level in stride(from: depth, through: 1, by: -1) {
            let up = add("up\(level)", .upsample2, [x])
            let cat = add("cat\(level)", .concat, [up, skips[level - 1]])
            x = block("d\(level)a", cat, channels(level))
            x = block("d\(level)b", x, channels(level))
        }
        _ = add("head", .conv2d(outChannels: 1, kernel: 1, bias: true), [x])
        let name = self == .w1 ? "unet-w1"
            : "unet-d\(depth)-c\(baseChannels)-g\(groups)-\(inputChannels)x\(height)x\(width)"
        return ModelSpec(
            name: name, input: FeatureShape(channels: inputChannels, height: height, width: width),
            nodes: nodes)
    }
}
