import Engine
import Testing
import TestSupport

/// Every layer's backward and tangent rules against central finite differences in Float64,
/// each inside the smallest graph that exercises it (input tangents and cotangents included).
@Suite struct LayerDerivativeTests {
    static let tolerance = 1e-6

    func expectExact(_ spec: ModelSpec, batch: Int = 2) throws {
        let e = try DerivativeCheck.check(spec, batch: batch)
        #expect(e.gradient < Self.tolerance, "gradient: \(e)")
        #expect(e.hessianVectorProduct < Self.tolerance, "H·v: \(e)")
        #expect(e.gradientFromHVP < 1e-12, "gradient from the H·v pass: \(e)")
    }

    @Test func lossThroughHeadOnly() throws {
        var g = GraphBuilder()
        try expectExact(g.head(0))
    }

    @Test func conv3x3WithBias() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 3, kernel: 3, bias: true), 0)
        let b = g.add(.conv2d(outChannels: 2, kernel: 3, bias: true), a)
        try expectExact(g.head(b))
    }

    @Test func conv1x1WithoutBias() throws {
        var g = GraphBuilder(channels: 2)
        let a = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), 0)
        let b = g.add(.conv2d(outChannels: 3, kernel: 1, bias: false), a)
        try expectExact(g.head(b))
    }

    @Test func groupNorm() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), 0)
        let b = g.add(.groupNorm(groups: 2, epsilon: 1e-5), a)
        try expectExact(g.head(b))
    }

    @Test func groupNormAfterGroupNorm() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), 0)
        let b = g.add(.groupNorm(groups: 4, epsilon: 1e-5), a)
        let c = g.add(.groupNorm(groups: 1, epsilon: 1e-3), b)
        try expectExact(g.head(c))
    }

    @Test func relu() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), 0)
        let b = g.add(.relu, a)
        try expectExact(g.head(b))
    }

    @Test func maxPoolThenUpsample() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 3, kernel: 3, bias: true), 0)
        let b = g.add(.maxPool2, a)
        let c = g.add(.upsample2, b)
        try expectExact(g.head(c))
    }

    @Test func parameterFreeLayersOnTheInput() throws {
        var g = GraphBuilder()
        let a = g.add(.maxPool2, 0)
        let b = g.add(.conv2d(outChannels: 3, kernel: 3, bias: true), a)
        let c = g.add(.upsample2, b)
        try expectExact(g.head(c))
    }

    @Test func concatWithSkipAndRepeatedInput() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 3, kernel: 3, bias: true), 0)
        let b = g.add(.conv2d(outChannels: 2, kernel: 3, bias: true), a)
        let c = g.add(.concat, b, a, b)
        try expectExact(g.head(c))
    }

    @Test func concatWithTheInput() throws {
        var g = GraphBuilder()
        let a = g.add(.conv2d(outChannels: 2, kernel: 3, bias: true), 0)
        let c = g.add(.concat, 0, a)
        let d = g.add(.conv2d(outChannels: 2, kernel: 3, bias: true), c)
        try expectExact(g.head(d))
    }

    @Test func smallUNet() throws {
        let spec = UNetConfig(height: 8, width: 8, depth: 2, baseChannels: 4, groups: 2).spec
        try expectExact(spec, batch: 2)
    }

    @Test func unetAt16x16() throws {
        let spec = UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 4, groups: 2).spec
        try expectExact(spec, batch: 2)
    }

    @Test func singleImageBatch() throws {
        let spec = UNetConfig(height: 8, width: 8, depth: 1, baseChannels: 4, groups: 2).spec
        try expectExact(spec, batch: 1)
    }
}
