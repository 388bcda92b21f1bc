import Core
import Engine
import MetaLearning
import RealModule
import Testing
import TestSupport

@Suite struct AdamTests {
    /// One and two steps against values worked out by hand.
    @Test func exactSteps() {
        let adam = Adam(learningRate: 0.1)
        var p: [Float] = [1, -2, 0.5]
        var state = Adam.State(count: 3)
        adam.update(parameters: &p, gradient: [0.5, -4, 0], state: &state)
        // Step 1: m-hat = g, v-hat = g^2, so each parameter moves by lr * g / (|g| + eps).
        #expect(abs(Double(p[0]) - (1 - 0.1 * (0.5 / (0.5 + 1e-8)))) < 1e-7)
        #expect(abs(Double(p[1]) - (-2 + 0.1 * (4 / (4 + 1e-8)))) < 1e-7)
        #expect(p[2] == 0.5)
        adam.update(parameters: &p, gradient: [1, 0, 0], state: &state)
        // Step 2 for p0: m = 0.9*0.05 + 0.1*1 = 0.145, v = 0.999*0.00025 + 0.001*1 = 0.00124975,
        // m-hat = 0.145/0.19 = 0.763157..., v-hat = 0.00124975/0.001999 = 0.625187...
        let mhat = 0.145 / 0.19, vhat = 0.00124975 / 0.001999
        let expected = (1 - 0.1 * (0.5 / (0.5 + 1e-8))) - 0.1 * mhat / (vhat.squareRoot() + 1e-8)
        #expect(abs(Double(p[0]) - expected) < 1e-6)
        #expect(state.step == 2)
    }

    @Test func clippingAndCosineSchedule() {
        var adam = Adam(learningRate: 1)
        adam.clipNorm = 1
        adam.cosineSteps = 10
        adam.minimumLearningRate = 0
        #expect(adam.learningRate(at: 1) == 1)
        #expect(abs(adam.learningRate(at: 6) - 0.5) < 1e-6)
        #expect(adam.learningRate(at: 11) < 1e-6)
        var p: [Float] = [0, 0]
        var s = Adam.State(count: 2)
        let norm = adam.update(parameters: &p, gradient: [3, 4], state: &s)
        #expect(norm == 5)
        // After clipping g = (0.6, 0.8); the first Adam step moves by lr * g / |g| elementwise.
        #expect(abs(p[0] + 1) < 1e-6 && abs(p[1] + 1) < 1e-6)
    }

    /// The in-place update of a slice has the bits of the textbook scalar loop on a copy of
    /// the slice (the vectorised loop may not reorder anything), with and without clipping,
    /// and leaves the rest of the parameters alone.
    @Test func sliceUpdateHasTheScalarLoopsBits() {
        var rng = RandomStream(seed: 9)
        for clip in [nil, Float(0.5)] {
            var adam = Adam(learningRate: 3e-3)
            adam.clipNorm = clip
            adam.cosineSteps = 7
            let n = 1003, range = 17..<(n - 5)
            var params = (0..<n).map { _ in Float(rng.normal()) }
            var reference = Array(params[range])
            var state = Adam.State(count: range.count), referenceState = state
            for _ in 0..<6 {
                let g = (0..<n).map { _ in Float(rng.normal()) * 0.3 }
                let before = params
                adam.update(parameters: &params, range: range, gradient: g, state: &state)
                // The reference: PyTorch's rule written out, one element at a time.
                let slice = Array(g[range])
                var squared: Double = 0
                for x in slice { squared += Double(x) * Double(x) }
                let norm = Float(squared.squareRoot())
                let scale: Float = clip.map { norm > $0 ? $0 / norm : 1 } ?? 1
                referenceState.step += 1
                let t = referenceState.step, lr = adam.learningRate(at: t)
                let c1 = 1 - Float.pow(adam.beta1, t), c2 = 1 - Float.pow(adam.beta2, t)
                for i in slice.indices {
                    let gi = slice[i] * scale
                    referenceState.m[i] = adam.beta1 * referenceState.m[i] + (1 - adam.beta1) * gi
                    referenceState.v[i] = adam.beta2 * referenceState.v[i] + (1 - adam.beta2) * gi * gi
                    reference[i] -= lr * (referenceState.m[i] / c1) / ((referenceState.v[i] / c2).squareRoot() + adam.epsilon)
                }
                #expect(Array(params[range]).map(\.bitPattern) == reference.map(\.bitPattern))
                #expect(state == referenceState)
                #expect(params[..<range.lowerBound] == before[..<range.lowerBound] && params[range.upperBound...] == before[range.upperBound...])
            }
        }
    }
}
