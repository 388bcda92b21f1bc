import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Training

/// Builds small model graphs in one line per node, for derivative checks.
public struct GraphBuilder {
    public private(set) var nodes: [ModelSpec.Node]
    public let input: FeatureShape

    public init(channels: Int = 1, height: Int = 8, width: Int = 8) {
        input = FeatureShape(channels: channels, height: height, width: width)
        nodes = [.init(name: "input", op: .input, inputs: [])]
    }

    @discardableResult
    public mutating func add(_ op: ModelSpec.Op, _ inputs: Int...) -> Int {
        nodes.append(.init(name: "n\(nodes.count)", op: op, inputs: inputs))
        return nodes.count - 1
    }

    /// Appends a 1x1 head to one logit channel and returns the spec.
    public mutating func head(_ from: Int) -> ModelSpec {
        add(.conv2d(outChannels: 1, kernel: 1, bias: true), from)
        return ModelSpec(name: "test", input: input, nodes: nodes)
    }
}

/// Random inputs for derivative checks.
public struct Problem<Scalar: EngineScalar> {
    public var parameters: [Scalar]
    public var direction: [Scalar]
    public var images: [Scalar]
    public var masks: [Scalar]
    public var batch: Int

    /// Parameters from the default initialisation with every GroupNorm affine parameter
    /// perturbed (so no derivative term vanishes), unit-normal images and random masks.
    public init(layout: ParameterLayout, input: FeatureShape, batch: Int, seed: UInt64) {
        var rng = RandomStream(seed: seed)
        parameters = layout.initialValues(seed: seed).map { Scalar($0) }
        for e in layout.entries where e.shape.count == 1 {
            for i in e.range { parameters[i] += Scalar(rng.uniform(-0.3, 0.3)) }
        }
        direction = (0..<layout.count).map { _ in Scalar(rng.normal()) }
        images = (0..<(batch * input.count)).map { _ in Scalar(rng.normal()) }
        masks = (0..<(batch * input.plane)).map { _ in rng.chance(0.4) ? 1 : 0 }
        self.batch = batch
    }
}

/// One helper per kind of derivative check (as tinygrad's helper_test_op): each case is one line.
public enum DerivativeCheck {
    public struct Errors: CustomStringConvertible {
        /// max |analytic - numeric| / max |numeric| over all parameters.
        public var gradient: Double
        public var hessianVectorProduct: Double
        /// The gradient the H·v pass returns against the plain gradient pass.
        public var gradientFromHVP: Double
        public var description: String {
            "gradient \(gradient), H·v \(hessianVectorProduct), gradient from H·v pass \(gradientFromHVP)"
        }
    }

    /// Checks the gradient coordinate by coordinate and H·v along a random direction, both
    /// against central finite differences in Float64. Steps are small (1e-7) because ReLU and
    /// max-pooling are only piecewise smooth: a larger step can cross a kink and measure
    /// the jump instead of the derivative.
    public static func check(_ spec: ModelSpec, batch: Int = 2, seed: UInt64 = 7, step: Double = 1e-7, hvpStep: Double = 1e-7)
        throws -> Errors
    {
        let net = try Network<Double>(spec: spec, capacity: batch)
        var pr = Problem<Double>(layout: net.layout, input: spec.input, batch: batch, seed: seed)
        let n = net.layout.count
        var grad = [Double](repeating: 0, count: n)
        var hv = [Double](repeating: 0, count: n)
        var gradFromHVP = [Double](repeating: 0, count: n)
        _ = net.gradient(parameters: pr.parameters, images: pr.images, masks: pr.masks, batch: batch, into: &grad)
        _ = net.hessianVectorProduct(
            parameters: pr.parameters, direction: pr.direction, images: pr.images, masks: pr.masks,
            batch: batch, into: &hv, gradient: &gradFromHVP)

        func loss(_ p: [Double]) -> Double {
            net.lossValue(parameters: p, images: pr.images, masks: pr.masks, batch: batch).total
        }
        var numericGrad = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let saved = pr.parameters[i]
            pr.parameters[i] = saved + step
            let up = loss(pr.parameters)
            pr.parameters[i] = saved - step
            let down = loss(pr.parameters)
            pr.parameters[i] = saved
            numericGrad[i] = (up - down) / (2 * step)
        }
        let h = hvpStep
        var plus = [Double](repeating: 0, count: n), minus = plus
        let pPlus = zip(pr.parameters, pr.direction).map { $0 + h * $1 }
        let pMinus = zip(pr.parameters, pr.direction).map { $0 - h * $1 }
        _ = net.gradient(parameters: pPlus, images: pr.images, masks: pr.masks, batch: batch, into: &plus)
        _ = net.gradient(parameters: pMinus, images: pr.images, masks: pr.masks, batch: batch, into: &minus)
        let numericHV = zip(plus, minus).map { ($0 - $1) / (2 * h) }
        return Errors(gradient: relativeError(grad, numericGrad), hessianVectorProduct: relativeError(hv, numericHV),
                      gradientFromHVP: relativeError(gradFromHVP, grad))
    }
}

/// The Float32 engine (oneDNN's convolution primitives by default) against the Float64 one
/// (always unfolding) on identical inputs: logits, loss, gradient and H·v, as norm-wise
/// relative errors. Inputs are rounded to Float32 first, so only arithmetic differs.
public enum PrecisionCheck {
    public struct Errors: CustomStringConvertible {
        public var logits: Double, loss: Double, gradient: Double, hessianVectorProduct: Double
        public var description: String {
            "logits \(logits), loss \(loss), gradient \(gradient), H·v \(hessianVectorProduct)"
        }
        public var largest: Double { max(logits, loss, gradient, hessianVectorProduct) }
    }

    public static func check(_ spec: ModelSpec, batch: Int, seed: UInt64 = 3) throws -> Errors {
        let single = try Network<Float>(spec: spec, capacity: batch)
        let double = try Network<Double>(spec: spec, capacity: batch)
        let p = Problem<Double>(layout: double.layout, input: spec.input, batch: batch, seed: seed)
        let round = { (x: [Double]) in x.map { Float($0) } }
        let (params, direction, images, masks) = (round(p.parameters), round(p.direction), round(p.images), round(p.masks))
        let widen = { (x: [Float]) in x.map { Double($0) } }
        let n = double.layout.count
        let outputs = spec.input.plane * batch

        let logits32 = Array(UnsafeBufferPointer(start: single.forward(parameters: params, images: images, batch: batch), count: outputs))
        let logits64 = Array(UnsafeBufferPointer(start: double.forward(parameters: widen(params), images: widen(images), batch: batch), count: outputs))
        var g32 = [Float](repeating: 0, count: n), hv32 = g32
        var g64 = [Double](repeating: 0, count: n), hv64 = g64
        let loss32 = single.hessianVectorProduct(parameters: params, direction: direction, images: images, masks: masks,
                                                 batch: batch, into: &hv32, gradient: &g32)
        let loss64 = double.hessianVectorProduct(parameters: widen(params), direction: widen(direction), images: widen(images),
                                                 masks: widen(masks), batch: batch, into: &hv64, gradient: &g64)
        var plain32 = [Float](repeating: 0, count: n)
        _ = single.gradient(parameters: params, images: images, masks: masks, batch: batch, into: &plain32)
        return Errors(
            logits: relativeError(widen(logits32), logits64),
            loss: abs(Double(loss32.total) - loss64.total) / abs(loss64.total),
            gradient: max(relativeError(widen(g32), g64), relativeError(widen(plain32), g64)),
            hessianVectorProduct: relativeError(widen(hv32), hv64))
    }
}

/// The flags of /proc/cpuinfo's first processor (empty where it cannot be read).
private let cpuFlags: Set<Substring> = {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    return Set(line.split(separator: " "))
}()

/// Whether this CPU has AVX512-BF16 (the `avx512_bf16` flag of /proc/cpuinfo), which bf16
/// precision needs.
public let machineHasBF16 = cpuFlags.contains("avx512_bf16")

/// Whether this CPU runs oneDNN's AVX-512 kernels (`avx512bw` in /proc/cpuinfo), which
/// Winograd convolutions need.
public let machineHasAVX512 = cpuFlags.contains("avx512bw")

/// max |a - b| / max |b| (norm-wise relative error, robust to near-zero entries).
public func relativeError<S: BinaryFloatingPoint>(_ a: [S], _ b: [S]) -> Double {
    precondition(a.count == b.count, "length mismatch")
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a, b) {
        diff = max(diff, abs(Double(x) - Double(y)))
        scale = max(scale, abs(Double(y)))
    }
    return scale == 0 ? diff : diff / scale
}

/// The folder holding committed test fixtures.
public func fixturePath(_ name: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SharedTests/Fixtures/\(name)").path
}

/// The formula parameters and directions of `Tests/Reference/w1.py`, reproduced bit for bit,
/// so cross-framework fixtures need not store them.
public enum ReferenceFormula {
    static func uniform(_ name: String, _ count: Int, stream: UInt64) -> [Double] {
        let salt = UInt64(Gzip.crc32(Array(name.utf8))) + 40503 * stream
        return (0..<count).map { i in
            Double((UInt64(i) &* 2_654_435_761 &+ salt) & 0xFFFF_FFFF) / 4_294_967_296
        }
    }

    /// `gain` scales the convolution weights' bound gain/sqrt(fan_in), as in w1.py.
    public static func parameters(_ layout: ParameterLayout, stream: UInt64 = 0, gain: Double = 1) -> [Float] {
        var values = [Float](repeating: 0, count: layout.count)
        var fanIn = 1
        for e in layout.entries {
            let u = uniform(e.name, e.count, stream: stream)
            if e.shape.count == 4 { fanIn = e.shape[1] * e.shape[2] * e.shape[3] }
            for (j, uj) in u.enumerated() {
                let v: Double
                if e.name.hasSuffix(".gn.weight") {
                    v = 1 + 0.2 * (2 * uj - 1)
                } else if e.name.hasSuffix(".gn.bias") {
                    v = 0.2 * (2 * uj - 1)
                } else if e.shape.count == 4 {
                    v = (gain / Double(fanIn).squareRoot()) * (2 * uj - 1)
                } else {
                    v = (1 / Double(fanIn).squareRoot()) * (2 * uj - 1)
                }
                values[e.offset + j] = Float(v)
            }
        }
        return values
    }

    public static func direction(_ layout: ParameterLayout, stream: UInt64 = 1) -> [Float] {
        var values = [Float](repeating: 0, count: layout.count)
        for e in layout.entries {
            for (j, uj) in uniform(e.name, e.count, stream: stream).enumerated() {
                values[e.offset + j] = Float(0.1 * (2 * uj - 1))
            }
        }
        return values
    }

    /// Learned inner rates of `make_maml_fixtures.py`: 0.02 + 0.06 u per tensor and step.
    public static func rates(_ layout: ParameterLayout, steps: Int) -> [Float] {
        layout.entries.flatMap { e in
            uniform("inner_lr." + e.name, steps, stream: 2).map { Float(0.02 + 0.06 * $0) }
        }
    }

    /// Concatenates `prefix + name` tensors of a fixture in layout order.
    public static func flat(_ file: Safetensors.File, prefix: String, layout: ParameterLayout) throws -> [Float] {
        var out = [Float](repeating: 0, count: layout.count)
        for e in layout.entries {
            let t = try file.require(prefix + e.name, in: "fixture")
            precondition(t.shape == e.shape, "fixture shape mismatch for \(e.name)")
            out.replaceSubrange(e.range, with: t.values)
        }
        return out
    }
}

/// ||a - b||_2 / ||b||_2.
public func relativeL2<S: BinaryFloatingPoint>(_ a: [S], _ b: [S]) -> Double {
    var d = 0.0, n = 0.0
    for (x, y) in zip(a, b) {
        d += (Double(x) - Double(y)) * (Double(x) - Double(y))
        n += Double(y) * Double(y)
    }
    return (d / max(n, .leastNormalMagnitude)).squareRoot()
}

/// A value guarded by a lock, for collecting results from threads in tests.
public final class ThreadSafeBox<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()
    public init(_ value: T) { stored = value }
    public var value: T { lock.withLock { stored } }
    public func mutate(_ body: (inout T) -> Void) { lock.withLock { body(&stored) } }
}

/// A temporary folder removed when the value is released.
public final class TemporaryFolder {
    public let path: String
    public init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("medmaml-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Copies a fixture file or folder into this folder and returns the copy's path.
    public func copy(_ fixture: String, as name: String? = nil) throws -> String {
        let target = path + "/" + (name ?? URL(fileURLWithPath: fixture).lastPathComponent)
        try FileManager.default.copyItem(atPath: fixture, toPath: target)
        return target
    }

    public func write(_ name: String, _ data: Data) throws -> String {
        let p = path + "/" + name
        try data.write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// The specification of a run on the synthetic family at `size` pixels.
public func syntheticRunSpec(_ config: TrainingConfig, size: Int, evaluation: EvaluationSpec = EvaluationSpec()) -> RunSpec {
    let source = SyntheticFamily(size: size)
    var options = VolumeOptions()
    options.size = size
    let dataset = DatasetSpec(kind: .synthetic, name: "synthetic", path: "synthetic", options: options, identity: source.identity)
    return RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: source.defaultSplit, evaluation: evaluation)
}

/// A training run on the synthetic family at `size` pixels, writing into `folder`.
public func syntheticRun(_ config: TrainingConfig, size: Int, backend: TaskBackend, folder: String,
                         evaluation: EvaluationSpec = EvaluationSpec()) throws -> TrainingRun {
    try TrainingRun(spec: syntheticRunSpec(config, size: size, evaluation: evaluation), source: SyntheticFamily(size: size),
                    backend: backend, outputs: RunOutputs(checkpointFolder: folder), logger: testLogger)
}

/// The logger tests hand to library code that takes one.
public let testLogger: Logger = {
    var logger = Logger(label: "medmaml.test")
    logger.logLevel = .warning
    return logger
}()
