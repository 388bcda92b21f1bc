import Core
import Engine
import Foundation
import Testing
import TestSupport

/// Matrix products run single-threaded in the calling thread, so the same computation on two
/// threads at once gives bitwise-identical results (the determinism contract depends on it).
@Suite struct BLASThreadingTests {
    @Test func openBLASIsSingleThreadedPerCall() {
        BLAS.configure()
        #expect(BLAS.threadsPerCall == 1)
    }

    @Test func sameGradientOnTwoThreadsAtOnceIsBitwiseIdentical() throws {
        let spec = UNetConfig(height: 32, width: 32).spec
        let layout = ParameterLayout(try spec.parameterShapes())
        let params = layout.initialValues(seed: 11)
        var rng = RandomStream(seed: 5)
        let images = (0..<(3 * 32 * 32)).map { _ in Float(rng.normal()) }
        let masks = (0..<(3 * 32 * 32)).map { _ in Float(rng.chance(0.3) ? 1 : 0) }
        let direction = (0..<layout.count).map { _ in Float(rng.normal()) }

        @Sendable func compute() throws -> [Float] {
            let net = try Network<Float>(spec: spec, capacity: 3)
            var g = [Float](repeating: 0, count: layout.count), hv = g
            for _ in 0..<3 {
                _ = net.gradient(parameters: params, images: images, masks: masks, batch: 3, into: &g)
                _ = net.hessianVectorProduct(parameters: params, direction: direction, images: images,
                                             masks: masks, batch: 3, into: &hv)
            }
            return g + hv
        }
        let reference = try compute()
        let results = ThreadSafeBox<[[Float]]>([])
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                if let r = try? compute() { results.mutate { $0.append(r) } }
            }
        }
        group.wait()
        #expect(results.value.count == 2)
        for r in results.value {
            #expect(r.map(\.bitPattern) == reference.map(\.bitPattern))
        }
    }
}
