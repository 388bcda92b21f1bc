import Core
import Engine
import Foundation

/// Times W1 forward, forward+backward and one Hessian-vector product, recomputing its
/// primal passes and replaying them from a tape (`MEDMAML_KEEP_STEPS`), single-threaded.
///
/// Each measurement is the median of `repetitions` runs after `warmup` runs; effective
/// GFLOP/s uses the nominal cost of the forward pass (multiply-add counted as 2) times
/// 1, 3, 8 and 6 respectively: the convolution passes each case runs (a product without
/// the gradient needs no primal weight gradient).
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

    /// The network and the three timed cases on fixed random inputs: (name, GEMM-units of
    /// work relative to a forward pass, the call).
    func cases() throws -> (net: Network<Float>, cases: [(name: String, multiple: Double, body: () -> Void)]) {
        let spec = config.spec
        let net = try Network<Float>(spec: spec, capacity: batch)
        var rng = RandomStream(seed: 1)
        let params = net.layout.initialValues(seed: 1)
        let direction = (0..<net.layout.count).map { _ in Float(rng.normal()) }
        let images = (0..<(batch * spec.input.count)).map { _ in Float(rng.normal()) }
        let masks = (0..<(batch * spec.input.plane)).map { _ in Float(rng.chance(0.3) ? 1 : 0) }
        var grad = [Float](repeating: 0, count: net.layout.count)
        var hv = grad
        let b = batch
        let tape = net.makeTape()
        _ = net.gradient(parameters: params, images: images, masks: masks, batch: b, into: &grad, recordingInto: tape)
        return (net, [
            ("forward", 1, { _ = net.lossValue(parameters: params, images: images, masks: masks, batch: b) }),
            ("forward+backward", 3, { _ = net.gradient(parameters: params, images: images, masks: masks, batch: b, into: &grad) }),
            ("hessian-vector product", 8, {
                _ = net.hessianVectorProduct(parameters: params, direction: direction, images: images,
                                             masks: masks, batch: b, into: &hv)
            }),
            ("hessian-vector product, replayed", 6, {
                _ = net.hessianVectorProduct(parameters: params, direction: direction, images: images,
                                             masks: masks, batch: b, into: &hv, replaying: tape)
            }),
        ])
    }

    public func run() throws -> [Result] {
        let fwd = try Self.forwardFlops(config.spec, batch: batch)
        let only = ProcessInfo.processInfo.environment["ONLY"].flatMap { Int($0) }
        return try cases().cases.enumerated().filter { only == nil || $0.offset == only! }.map(\.element).map { name, multiple, body in
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

extension EngineBenchmark {
    /// `bench engine --profile`: the three cases again with every layer call and matrix
    /// product timed, as a table per pass and kind of layer (time, share of the case, share
    /// inside matrix products, and the products' GFLOP/s), then the convolutions one by one.
    public func profile() throws -> String {
        let spec = config.spec
        let (net, cases) = try cases()
        let shapes = try spec.validate()
        func kind(_ node: Int) -> String {
            guard node < spec.nodes.count else { return "loss" }
            switch spec.nodes[node].op {
            case .conv2d(_, let k, _): return "conv\(k)x\(k)"
            case .groupNorm: return "groupnorm(+relu)"
            default: return "\(spec.nodes[node].op)".split(separator: "(").first.map(String.init) ?? "?"
            }
        }
        let model = config == .w1 ? "W1" : "U-Net \(config.baseChannels) base channels, \(config.height)x\(config.width)"
        var out = ["# profile: \(model), \(batch) images, 1 thread, \(BLAS.kernelDescription); per call, median-free means over \(repetitions) calls"]
        var convDetail: [String: EngineProfile.Entry] = [:]
        for (name, _, body) in cases {
            for _ in 0..<warmup { body() }
            let profile = EngineProfile()
            net.profile = profile
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<max(repetitions, 1) { body() }
            let total = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 / Double(max(repetitions, 1))
            net.profile = nil
            var byKind: [String: EngineProfile.Entry] = [:]
            for (key, e) in profile.entries {
                let k = "\(key.pass.rawValue) \(kind(key.node))"
                var agg = byKind[k] ?? EngineProfile.Entry()
                agg.seconds += e.seconds
                agg.gemmSeconds += e.gemmSeconds
                agg.gemmFlops += e.gemmFlops
                agg.calls += e.calls
                byKind[k] = agg
                let short = ["forward+backward": "fb", "hessian-vector product": "hvp", "hessian-vector product, replayed": "hvr"]
                if kind(key.node).hasPrefix("conv"), let tag = short[name] {
                    let n = spec.nodes[key.node]
                    let label = "\(tag) \(key.pass.rawValue) \(n.name) \(shapes[n.inputs[0]].channels)->\(shapes[key.node].channels)@\(shapes[key.node].height)"
                    convDetail[label] = e
                }
            }
            let reps = Double(max(repetitions, 1))
            let measured = byKind.values.reduce(0.0) { $0 + $1.seconds } / reps
            let gemm = byKind.values.reduce(0.0) { $0 + $1.gemmSeconds } / reps
            out.append("")
            out.append(String(format: "%@: %.2f ms per call; %.1f%% inside matrix products, %.1f%% outside",
                              name, total * 1e3, 100 * gemm / total, 100 * (total - gemm) / total))
            out.append("  pass and layer kind                      ms   share   in GEMM   GEMM GFLOP/s")
            for (k, e) in byKind.sorted(by: { $0.value.seconds > $1.value.seconds }) {
                let ms = e.seconds / reps * 1e3
                out.append("  " + k.padding(toLength: 36, withPad: " ", startingAt: 0)
                           + String(format: "%8.2f  %5.1f%%    %5.1f%%   %8.1f", ms, 100 * e.seconds / reps / total,
                                    e.seconds > 0 ? 100 * e.gemmSeconds / e.seconds : 0,
                                    e.gemmSeconds > 0 ? e.gemmFlops / e.gemmSeconds / 1e9 : 0))
            }
            out.append(String(format: "  (layer calls account for %.1f%% of the case; the rest is the network's own bookkeeping)", 100 * measured / total))
        }
        out.append("")
        out.append("convolutions one by one (ms per call, GEMM GFLOP/s, share outside GEMM):")
        for (label, e) in convDetail.sorted(by: { $0.key < $1.key }) {
            let reps = Double(max(repetitions, 1))
            out.append("  " + label.padding(toLength: 52, withPad: " ", startingAt: 0)
                       + String(format: "%7.3f  %7.1f  %5.1f%%", e.seconds / reps * 1e3,
                                e.gemmSeconds > 0 ? e.gemmFlops / e.gemmSeconds / 1e9 : 0,
                                e.seconds > 0 ? 100 * (e.seconds - e.gemmSeconds) / e.seconds : 0))
        }
        return out.joined(separator: "\n")
    }
}
