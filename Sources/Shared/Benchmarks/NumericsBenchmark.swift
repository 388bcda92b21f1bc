import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// How far the Float32 engine lands from Float64 on W1 meta-gradients, and why
/// (`bench numerics`): per seed, the relative distance of the Float32 second-order
/// meta-gradient from the Float64 one (same inputs, Float64 products by OpenBLAS's dgemm),
/// the relative error of the first forward pass's convolution outputs (the products' own
/// rounding), and the number of ReLU and max-pool decisions that differ between the two
/// precisions in the forward passes over the support and query images at the meta-parameters (a unit on one side of zero in Float32 and the other in Float64).
public struct NumericsBenchmark {
    public struct Row: Sendable {
        public var seed: UInt64
        /// ||g32 - g64|| / ||g64||.
        public var gradientDistance: Double
        /// Largest relative error of a convolution's output in the first forward pass
        /// (||y32 - y64|| / ||y64|| per layer, the largest layer).
        public var convolutionError: Double
        /// ReLU outputs that are zero in one precision and positive in the other, and
        /// max-pool outputs that differ by more than rounding, in the first forward pass.
        public var reluFlips: Int
        public var poolFlips: Int
    }

    public var config: MetaConfig

    public init(config: MetaConfig) {
        self.config = config
    }

    public func run(seeds: [UInt64]) throws -> [Row] {
        let family = SyntheticFamily(size: config.model.input.height)
        let l32 = try MetaLearner<Float>(config: config), l64 = try MetaLearner<Double>(config: config)
        let spec = config.model
        let shapes = try spec.validate()
        var rows: [Row] = []
        for seed in seeds {
            let meta = l32.layout.initialValues(seed: seed, innerLearningRate: config.innerLearningRate)
            let task = Int(seed % UInt64(family.taskNames.count))
            let sample = try family.sample(task: task, index: seed, seed: seed, support: config.supportShots, query: config.queryShots)
            var g32 = [Float](repeating: 0, count: meta.count), g64 = [Double](repeating: 0, count: meta.count)
            _ = l32.metaGradient(meta: meta, task: sample, into: &g32)
            _ = l64.metaGradient(meta: meta.map { Double($0) }, task: sample, into: &g64)
            var num = 0.0, den = 0.0
            for i in meta.indices { num += (Double(g32[i]) - g64[i]) * (Double(g32[i]) - g64[i]); den += g64[i] * g64[i] }

            // The first forward passes (support and query images at the meta-parameters), node by node.
            let capacity = max(sample.supportCount, sample.queryCount)
            let n32 = try Network<Float>(spec: spec, capacity: capacity)
            let n64 = try Network<Double>(spec: spec, capacity: capacity)
            let params = Array(meta.prefix(n32.layout.count))
            var convError = 0.0, relu = 0, pool = 0
            for (images, count) in [(sample.supportImages, sample.supportCount), (sample.queryImages, sample.queryCount)] {
            _ = n32.forward(parameters: params, images: images, batch: count)
            _ = n64.forward(parameters: params.map { Double($0) }, images: images.map { Double($0) }, batch: count)
            for (i, node) in spec.nodes.enumerated() {
                guard let a = n32.nodeOutput(i, batch: count), let b = n64.nodeOutput(i, batch: count) else { continue }
                switch node.op {
                case .conv2d:
                    var e = 0.0, r = 0.0
                    for j in a.indices { e += (Double(a[j]) - b[j]) * (Double(a[j]) - b[j]); r += b[j] * b[j] }
                    convError = max(convError, (e / max(r, 1e-300)).squareRoot())
                case .relu:
                    for j in a.indices where (a[j] > 0) != (b[j] > 0) { relu += 1 }
                case .maxPool2:
                    let scale = b.reduce(0.0) { max($0, abs($1)) }
                    for j in a.indices where abs(Double(a[j]) - b[j]) > 1e-4 * scale { pool += 1 }
                default: break
                }
            }
            }
            _ = shapes
            rows.append(Row(seed: seed, gradientDistance: (num / den).squareRoot(), convolutionError: convError,
                            reluFlips: relu, poolFlips: pool))
        }
        return rows
    }
}
