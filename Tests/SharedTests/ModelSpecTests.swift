import Core
import Engine
import Testing
import TestSupport

@Suite struct ModelSpecTests {
    @Test func w1HasTheDocumentedParameters() throws {
        let spec = UNetConfig.w1.spec
        #expect(spec.name == "unet-w1")
        let shapes = try spec.parameterShapes()
        #expect(shapes.reduce(0) { $0 + $1.shape.reduce(1, *) } == 118_625)
        let byName = Dictionary(uniqueKeysWithValues: shapes.map { ($0.name, $0.shape) })
        #expect(byName["e1a.conv.weight"] == [16, 1, 3, 3])
        #expect(byName["d2a.conv.weight"] == [32, 96, 3, 3])
        #expect(byName["d1a.conv.weight"] == [16, 48, 3, 3])
        #expect(byName["bb.gn.bias"] == [64])
        #expect(byName["head.weight"] == [1, 16, 1, 1])
        #expect(byName["head.bias"] == [1])
        #expect(shapes.count == 42)
    }

    @Test func initialisationIsDeterministicAndPyTorchLike() throws {
        let layout = ParameterLayout(try UNetConfig.w1.spec.parameterShapes())
        let a = layout.initialValues(seed: 3), b = layout.initialValues(seed: 3)
        #expect(a == b)
        #expect(a != layout.initialValues(seed: 4))
        let w = layout["d2a.conv.weight"]!
        let bound = 1 / Float(96 * 9).squareRoot()
        #expect(a[w.range].allSatisfy { abs($0) <= bound })
        #expect(a[layout["e1a.gn.weight"]!.range].allSatisfy { $0 == 1 })
        #expect(a[layout["e1a.gn.bias"]!.range].allSatisfy { $0 == 0 })
    }

    /// Specs arrive from checkpoints and the network: every flaw is an error, not a trap.
    @Test func invalidSpecsAreRejected() {
        let input = FeatureShape(channels: 1, height: 8, width: 8)
        func spec(_ nodes: [ModelSpec.Node], input: FeatureShape = input) -> ModelSpec {
            ModelSpec(name: "bad", input: input, nodes: [.init(name: "in", op: .input, inputs: [])] + nodes)
        }
        let head = ModelSpec.Node(name: "h", op: .conv2d(outChannels: 1, kernel: 1, bias: true), inputs: [1])
        let cases: [ModelSpec] = [
            ModelSpec(name: "empty", input: input, nodes: []),
            spec([.init(name: "c", op: .conv2d(outChannels: 4, kernel: 3, bias: true), inputs: [5])]),
            spec([.init(name: "c", op: .conv2d(outChannels: 4, kernel: 2, bias: true), inputs: [0]), head]),
            spec([.init(name: "c", op: .conv2d(outChannels: 3, kernel: 3, bias: true), inputs: [0]),
                  .init(name: "g", op: .groupNorm(groups: 2, epsilon: 1e-5), inputs: [1])]),
            spec([.init(name: "p", op: .maxPool2, inputs: [0]), head], input: .init(channels: 1, height: 7, width: 8)),
            spec([.init(name: "c", op: .conv2d(outChannels: 2, kernel: 3, bias: true), inputs: [0])]),
            spec([.init(name: "c", op: .conv2d(outChannels: 1, kernel: 3, bias: true), inputs: [0]),
                  .init(name: "c", op: .relu, inputs: [1])]),
            spec([.init(name: "x", op: .input, inputs: [])]),
            spec([.init(name: "c", op: .conv2d(outChannels: -1, kernel: 3, bias: true), inputs: [0])]),
            spec([head], input: .init(channels: 1, height: 1 << 20, width: 1 << 20)),
        ]
        for c in cases {
            #expect(throws: ModelError.self, "\(c.nodes.map(\.op))") { _ = try Network<Float>(spec: c, capacity: 1) }
        }
    }
}
