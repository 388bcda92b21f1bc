import Core
import Engine
import Testing
import TestSupport

/// W1 against an independent framework: PyTorch's loss, gradient and H·v on the same
/// parameters and images (fixtures from Tests/Reference/make_engine_fixtures.py).
///
/// On the direct convolution primitives: one bottleneck pre-activation of this fixture is
/// exactly zero in Float64 and in direct Float32, and Winograd's rounding makes it positive,
/// so that ReLU decision (and one in the decoder that inherits it) differs from PyTorch's and
/// the gradient differs by 1.2e-2, as on any Float32 path where a pre-activation lies within
/// rounding of a decision (BENCHMARKS.md, "Float32 against float64"). Winograd runs the same
/// rules, checked against Float64 on smooth graphs
/// (`ConvolutionPrimitiveTests.winogradChainIsCloseToFloat64`).
@Suite struct PyTorchReferenceTests {
    @Test func w1LossGradientAndHessianVectorProductMatchPyTorch() throws {
        try BLAS.$scopedConvolution.withValue(.primitives) { try matchPyTorch() }
    }

    func matchPyTorch() throws {
        let file = try Safetensors.read(path: fixturePath("engine_w1.safetensors"))
        let images = try file.require("images", in: "fixture")
        let masks = try file.require("masks", in: "fixture")
        #expect(images.shape == [2, 1, 32, 32])
        let net = try Network<Float>(spec: UNetConfig(height: 32, width: 32).spec, capacity: 2)
        let layout = net.layout
        #expect(layout.count == 118_625)
        let params = ReferenceFormula.parameters(layout)
        let direction = ReferenceFormula.direction(layout)
        var grad = [Float](repeating: 0, count: layout.count)
        var hv = grad
        let value = net.gradient(parameters: params, images: images.values, masks: masks.values, batch: 2, into: &grad)
        _ = net.hessianVectorProduct(parameters: params, direction: direction, images: images.values,
                                     masks: masks.values, batch: 2, into: &hv)
        let expectedLoss = try file.require("loss", in: "fixture").values[0]
        #expect(abs(value.total - expectedLoss) / expectedLoss < 1e-5, "loss \(value.total) vs \(expectedLoss)")

        let expectedGrad = try ReferenceFormula.flat(file, prefix: "grad.", layout: layout)
        let expectedHV = try ReferenceFormula.flat(file, prefix: "hvp.", layout: layout)
        #expect(relativeL2(grad, expectedGrad) < 1e-4, "gradient rel. error \(relativeL2(grad, expectedGrad))")
        #expect(relativeL2(hv, expectedHV) < 1e-3, "H·v rel. error \(relativeL2(hv, expectedHV))")
        // Tensor by tensor too, relative to the whole vector's scale (some, like conv biases
        // before a GroupNorm, have a gradient that is zero up to rounding).
        let gScale = expectedGrad.map { abs($0) }.max()!, hScale = expectedHV.map { abs($0) }.max()!
        for e in layout.entries {
            let gErr = zip(grad[e.range], expectedGrad[e.range]).map { abs($0 - $1) }.max()! / gScale
            let hErr = zip(hv[e.range], expectedHV[e.range]).map { abs($0 - $1) }.max()! / hScale
            #expect(gErr < 1e-4, "gradient of \(e.name): \(gErr)")
            #expect(hErr < 1e-3, "H·v of \(e.name): \(hErr)")
        }
    }
}
