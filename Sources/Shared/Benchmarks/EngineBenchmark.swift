import Core
import Engine
import Foundation

/// Times W1 forward, forward+backward and one Hessian-vector product, single-threaded.
///
/// Each measurement is the median of `repetitions` runs after `warmup` runs; effective
/// GFLOP/s uses the nominal cost of the forward pass (multiply-add counted as 2) times
/// 1, 3 and 9 respectively, the usual conventions for a network dominated by convolutions.
public struct EngineBenchmark {
    public struct Result: Sendable {
        public var name: String
        public var milliseconds: Double
        public var gflops: Double
    }

    public var config: UNetConfig
    public var batch: Int
    public var repetitions: Int
    public var warmup: Int

    public init(config: UNetConfig = .w1, batch: Int = 5, repetitions: Int = 20, warmup: Int = 3) {
        self.config = config
        self.batch = batch
        self.repetitions = repetitions
        self.warmup = warmup
    }

    /// Nominal multiply-add FLOPs of one forward pass over `batch` images (convolutions only).
    public static func forwardFlops(_ spec: ModelSpec, batch: Int) throws -> Double {
        let shapes = try spec.validate()
        var flops = 0.0
        for (i, node) in spec.nodes.enumerated() {
            if case .conv2d(let o, let k, _) = node.op {
                let c = shapes[node.inputs[0]].channels
                flops += 2 * Double(o * c * k * k * shapes[i].plane)
            }
        }
        return flops * Double(batch)
    }

    public func run() throws -> [Result] {
        let spec = config.spec
        let net = try Network<Float>(spec: spec, capacity: batch)
        var rng = RandomStream(seed: 1)
        let params = net.layout.initialValues(seed: 1)
        let direction = (0..<net.layout.count).map { _ in Float(rng.normal()) }
        let images = (0..<(batch * spec.input.count)).map { _ in Float(rng.normal()) }
        let masks = (0..<(batch * spec.input.plane)).map { _ in Float(rng.chance(0.3) ? 1 : 0) }
        var grad = [Float](repeating: 0, count: net.layout.count)
        var hv = grad
        let fwd = try Self.forwardFlops(spec, batch: batch)
        let b = batch
        let cases: [(String, Double, () -> Void)] = [
            ("forward", 1, { _ = net.lossValue(parameters: params, images: images, masks: masks, batch: b) }),
            ("forward+backward", 3, { _ = net.gradient(parameters: params, images: images, masks: masks, batch: b, into: &grad) }),
            ("hessian-vector product", 9, {
                _ = net.hessianVectorProduct(parameters: params, direction: direction, images: images,
                                             masks: masks, batch: b, into: &hv)
            }),
        ]
        let only = ProcessInfo.processInfo.environment["ONLY"].flatMap { Int($0) }
        return cases.enumerated().filter { only == nil || $0.offset == only! }.map(\.element).map { name, multiple, body in
            let ms = Self.median(repetitions: repetitions, warmup: warmup, body)
            return Result(name: name, milliseconds: ms, gflops: fwd * multiple / (ms * 1e6))
        }
    }

    /// Median wall time in milliseconds.
    public static func median(repetitions: Int, warmup: Int, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        var times: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        return times[times.count / 2]
    }
}
