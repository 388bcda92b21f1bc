import Engine
import Foundation
import Testing
import TestSupport

/// oneDNN's convolution primitives (the Float32 path) against the Float64 engine, which
/// always unfolds and is checked against finite differences (LayerDerivativeTests). The
/// graphs are smooth (no ReLU or max-pool), so a Float32 result differs from Float64 by
/// rounding alone and a wrong rule shows as an error of order one.
@Suite struct ConvolutionPrimitiveTests {
    static let tolerance = 1e-5

    /// A chain of 3x3 convolutions on a 2-channel 12x12 input, each given as (output channels,
    /// bias, groups of the GroupNorm after it; nil: none, for the last).
    static func chain(_ layers: [(channels: Int, bias: Bool, groups: Int?)]) -> ModelSpec {
        var g = GraphBuilder(channels: 2, height: 12, width: 12)
        var node = 0
        for layer in layers {
            node = g.add(.conv2d(outChannels: layer.channels, kernel: 3, bias: layer.bias), node)
            if let groups = layer.groups { node = g.add(.groupNorm(groups: groups, epsilon: 1e-5), node) }
        }
        return g.head(node)
    }

    func expectClose(_ spec: ModelSpec, batch: Int) throws {
        let e = try PrecisionCheck.check(spec, batch: batch)
        #expect(e.largest < Self.tolerance, "\(e)")
    }

    /// A process that names no path computes Float32 with Winograd where the CPU runs oneDNN's
    /// AVX-512 kernels, with the direct primitives elsewhere.
    @Test func winogradIsTheDefaultFloat32PathOnAVX512() throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["MEDMAML_CONV"] == nil, environment["ONEDNN_MAX_CPU_ISA"] == nil,
              try BLAS.requestedBackend() == .onednn, BLAS.precision == .float32 else { return }
        #expect(BLAS.convolution == (machineHasAVX512 ? .winograd : .primitives))
    }

    /// Channel counts that fill no block (3, 5), one block (8) and two (16); with and
    /// without bias; the first layer has no input tangent, the others do.
    @Test(arguments: [1, 3])
    func chainOfConvolutions(batch: Int) throws {
        try expectClose(Self.chain([(3, true, 1), (8, false, 2), (16, true, 4), (5, true, nil)]), batch: batch)
    }

    @Test func fiveByFiveKernel() throws {
        var g = GraphBuilder(height: 10, width: 10)
        let a = g.add(.conv2d(outChannels: 4, kernel: 5, bias: true), 0)
        let b = g.add(.groupNorm(groups: 2, epsilon: 1e-5), a)
        let c = g.add(.conv2d(outChannels: 3, kernel: 5, bias: false), b)
        try expectClose(g.head(c), batch: 2)
    }

    /// Two convolutions read one node and a concat repeats an input: the second backward
    /// adds into the cotangent the first wrote (the sum post-op of the reorder).
    @Test func sharedInputsAccumulateCotangents() throws {
        var g = GraphBuilder(height: 8, width: 8)
        let a = g.add(.conv2d(outChannels: 8, kernel: 3, bias: true), 0)
        let b = g.add(.groupNorm(groups: 2, epsilon: 1e-5), a)
        let c = g.add(.conv2d(outChannels: 4, kernel: 3, bias: true), b)
        let d = g.add(.conv2d(outChannels: 4, kernel: 3, bias: false), b)
        let e = g.add(.concat, c, d, b)
        let f = g.add(.conv2d(outChannels: 3, kernel: 3, bias: true), e)
        try expectClose(g.head(f), batch: 2)
    }

    /// bf16 precision: the same rules on bfloat16 operands. Against Float64 the error is
    /// bfloat16's rounding (8 significant bits: about 0.4% per operand), well above Float32's
    /// and far below the error of order one a wrong rule gives; the networks are built in a
    /// bf16 scope, so the process's own precision is untouched. On a CPU without AVX512-BF16
    /// the settings are refused instead (`bf16IsRefusedWhereItCannotRun`).
    @Test(.enabled(if: machineHasBF16), arguments: [1, 3])
    func bf16ChainIsCloseToFloat64(batch: Int) throws {
        let spec = Self.chain([(3, true, 1), (16, false, 4), (5, true, nil)])
        let single = try PrecisionCheck.check(spec, batch: batch)
        let half = try BLAS.$scopedPrecision.withValue(.bf16) { try PrecisionCheck.check(spec, batch: batch) }
        #expect(half.largest < 0.05, "\(half)")
        // bfloat16 really computed: every result is further from Float64 than Float32's.
        for (h, s) in [(half.logits, single.logits), (half.gradient, single.gradient),
                       (half.hessianVectorProduct, single.hessianVectorProduct)] {
            #expect(h > 1e-4 && h > 20 * s, "bf16 \(half), float32 \(single)")
        }
    }

    /// bf16 keeps the determinism contract: a replayed product has the bits of a recomputed
    /// one, and a fresh network computes the same bits.
    @Test(.enabled(if: machineHasBF16)) func bf16IsDeterministic() throws {
        try BLAS.$scopedPrecision.withValue(.bf16) { try savedInputsBelongToTheirPass(channels: 8) }
    }

    /// What no machine computes is refused before anything runs: bf16 with unfolded
    /// convolutions, with OpenBLAS, or with kernels other than avx512-bf16.
    @Test func bf16IsRefusedWhereItCannotRun() throws {
        let refused = [NumericsSettings(convolution: .im2col, precision: .bf16),
                       NumericsSettings(matrixLibrary: .openblas, precision: .bf16),
                       NumericsSettings(cpuKernels: .avx512, precision: .bf16),
                       NumericsSettings(cpuKernels: .avx512AMX, precision: .bf16)]
        for settings in refused {
            #expect(throws: NumericsSettings.Failure.self, "\(settings)") { try settings.check() }
        }
        try NumericsSettings(precision: .bf16).check()
        try NumericsSettings(cpuKernels: .avx512BF16, precision: .bf16).check()
        #expect(NumericsSettings(precision: .bf16).resolved().cpuKernels == .avx512BF16)
    }

    /// Winograd convolutions: the same rules on oneDNN's Winograd kernels, which take the
    /// 3x3 layers whose channel counts are multiples of 16 (the others run direct). Against
    /// Float64 they are as close as the direct primitives; and they really ran, since their
    /// bits differ from the direct primitives' on the same inputs.
    @Test(.enabled(if: machineHasAVX512), arguments: [1, 3])
    func winogradChainIsCloseToFloat64(batch: Int) throws {
        let spec = Self.chain([(16, true, 4), (16, false, 4), (32, true, 4), (5, true, nil)])
        let winograd = try BLAS.$scopedConvolution.withValue(.winograd) { try PrecisionCheck.check(spec, batch: batch) }
        #expect(winograd.largest < Self.tolerance, "\(winograd)")

        func gradient() throws -> [Float] {
            let net = try Network<Float>(spec: spec, capacity: batch)
            let p = Problem<Float>(layout: net.layout, input: spec.input, batch: batch, seed: 4)
            var out = [Float](repeating: 0, count: net.layout.count)
            _ = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: batch, into: &out)
            return out
        }
        let direct = try BLAS.$scopedConvolution.withValue(.primitives) { try gradient() }
        let viaWinograd = try BLAS.$scopedConvolution.withValue(.winograd) { try gradient() }
        #expect(zip(direct, viaWinograd).contains { $0 != $1 }, "the Winograd path computed the direct primitives' bits")
        #expect(relativeError(viaWinograd, direct) < Self.tolerance)
    }

    /// Winograd keeps the determinism contract: a replayed product has the bits of a recomputed
    /// one, and a fresh network computes the same bits (16 channels, so Winograd runs).
    @Test(.enabled(if: machineHasAVX512)) func winogradIsDeterministic() throws {
        try BLAS.$scopedConvolution.withValue(.winograd) { try savedInputsBelongToTheirPass(channels: 16) }
    }

    /// Winograd is refused where oneDNN has no Winograd kernel for any layer: bf16 operands,
    /// AVX2 kernels.
    @Test func winogradIsRefusedWhereItCannotRun() throws {
        let refused = [NumericsSettings(convolution: .winograd, precision: .bf16),
                       NumericsSettings(cpuKernels: .avx2, convolution: .winograd)]
        for settings in refused {
            #expect(throws: NumericsSettings.Failure.self, "\(settings)") { try settings.check() }
        }
        try NumericsSettings(cpuKernels: .avx512, convolution: .winograd).check()
        try NumericsSettings(matrixLibrary: .openblas, convolution: .winograd).check()
    }

    /// Batch sizes change between calls on one network (support, query, evaluation): each
    /// gets its own primitives, and an earlier size's results are unchanged by a later one.
    @Test func batchSizesMixOnOneNetwork() throws {
        var g = GraphBuilder(channels: 1, height: 8, width: 8)
        let a = g.add(.conv2d(outChannels: 8, kernel: 3, bias: true), 0)
        let spec = g.head(a)
        let net = try Network<Float>(spec: spec, capacity: 4)
        let p = Problem<Float>(layout: net.layout, input: spec.input, batch: 4, seed: 9)
        func gradient(_ batch: Int) -> [Float] {
            var out = [Float](repeating: 0, count: net.layout.count)
            _ = net.gradient(parameters: p.parameters, images: p.images, masks: p.masks, batch: batch, into: &out)
            return out
        }
        let first = gradient(2)
        _ = gradient(4)
        _ = gradient(1)
        #expect(gradient(2) == first)
    }

    /// A forward pass stages each convolution's input in the pass's saved state, and the
    /// backward and tangent passes of that pass read it there. So the copy belongs to its
    /// pass: after passes over other images and batch sizes on the network's own buffers, a
    /// tape's replayed Hessian-vector product has the bits of a recomputed one, and every
    /// gradient has the bits of a fresh network's.
    @Test(arguments: [8]) func savedInputsBelongToTheirPass(channels: Int) throws {
        var g = GraphBuilder(channels: 1, height: 8, width: 8)
        let a = g.add(.conv2d(outChannels: channels, kernel: 3, bias: true), 0)
        let b = g.add(.groupNorm(groups: 2, epsilon: 1e-5), a)
        let c = g.add(.conv2d(outChannels: channels, kernel: 3, bias: true), b)
        let d = g.add(.groupNorm(groups: 2, epsilon: 1e-5), c)
        let e = g.add(.conv2d(outChannels: 3, kernel: 3, bias: false), d)
        let spec = g.head(e)
        let net = try Network<Float>(spec: spec, capacity: 4)
        let p = Problem<Float>(layout: net.layout, input: spec.input, batch: 4, seed: 9)
        let q = Problem<Float>(layout: net.layout, input: spec.input, batch: 4, seed: 10)
        let n = net.layout.count
        func gradient(_ network: Network<Float>, _ x: Problem<Float>, batch: Int, tape: Network<Float>.Tape? = nil) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            _ = network.gradient(parameters: x.parameters, images: x.images, masks: x.masks, batch: batch, into: &out, recordingInto: tape)
            return out
        }
        func product(_ network: Network<Float>, _ x: Problem<Float>, batch: Int, tape: Network<Float>.Tape? = nil) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            _ = network.hessianVectorProduct(parameters: x.parameters, direction: x.direction, images: x.images, masks: x.masks,
                                             batch: batch, into: &out, replaying: tape)
            return out
        }
        let tape = net.makeTape()
        let recorded = gradient(net, p, batch: 3, tape: tape)
        let others = [gradient(net, q, batch: 4), gradient(net, q, batch: 1), product(net, q, batch: 2)]
        let replayed = product(net, p, batch: 3, tape: tape)

        let fresh = { try Network<Float>(spec: spec, capacity: 4) }
        #expect(recorded == gradient(try fresh(), p, batch: 3))
        #expect(others[0] == gradient(try fresh(), q, batch: 4))
        #expect(others[1] == gradient(try fresh(), q, batch: 1))
        #expect(others[2] == product(try fresh(), q, batch: 2))
        #expect(replayed.map(\.bitPattern) == product(try fresh(), p, batch: 3).map(\.bitPattern))
        // Against the network's own buffers, now last used at another batch size.
        #expect(replayed == product(net, p, batch: 3))
    }
}
