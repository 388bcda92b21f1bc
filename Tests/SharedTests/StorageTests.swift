import Core
import Engine
import Testing

/// Large engine buffers take memory only where a computation writes them, and read as zeros.
@Suite struct StorageTests {
    @Test func aLargeBufferTakesMemoryOnlyWhereWritten() {
        let storage = Storage<Float>(count: 1 << 22)  // 16 MiB
        #expect(storage.isMapped)
        #expect(storage.residentBytes == 0)
        storage.pointer[123_457] = 3
        let page = 4096
        #expect(storage.residentBytes >= page && storage.residentBytes <= 2 * page)
        #expect(storage.pointer[0] == 0 && storage.pointer[123_456] == 0 && storage.pointer[(1 << 22) - 1] == 0)
        #expect(storage.pointer[123_457] == 3)
        storage.zero()
        #expect(storage.pointer[123_457] == 0)
    }

    @Test func aSmallBufferIsAllocatedAndZeroed() {
        let storage = Storage<Double>(count: 1000)
        #expect(!storage.isMapped)
        #expect(storage.residentBytes == 8000)
        #expect(storage.buffer.allSatisfy { $0 == 0 })
    }

    /// Prediction runs forward passes only: the tangent and cotangent buffers it never
    /// writes stay out of memory, and a gradient brings the cotangents in.
    @Test func aForwardOnlyNetworkHoldsLittleMoreThanItsValues() throws {
        let spec = UNetConfig(height: 128, width: 128, depth: 2, baseChannels: 8, groups: 4).spec
        let layout = ParameterLayout(try spec.parameterShapes())
        let parameters = layout.initialValues(seed: 3)
        var rng = RandomStream(seed: 4)
        let images = (0..<(8 * 128 * 128)).map { _ in Float(rng.normal()) }
        let masks = images.map { $0 > 0.5 ? Float(1) : 0 }
        let network = try Network<Float>(spec: spec, capacity: 8)
        let built = network.bufferBytes
        #expect(built.resident < built.allocated / 20)
        _ = network.forward(parameters: parameters, images: images, batch: 8)
        let forward = network.bufferBytes
        #expect(forward.resident < forward.allocated * 2 / 5)
        var gradient = [Float](repeating: 0, count: layout.count)
        _ = network.gradient(parameters: parameters, images: images, masks: masks, batch: 8, into: &gradient)
        #expect(network.bufferBytes.resident > forward.resident * 3 / 2)
    }
}
