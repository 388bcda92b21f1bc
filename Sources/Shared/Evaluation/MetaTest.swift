import Foundation

/// The meta-test protocol: each method adapts to each sampled instance of the held-out tasks
/// from the same K labelled support images and is scored on the same Q query images.
/// An instance's score is the mean over its query images; confidence intervals are over
/// instances.
public struct MetaTest {
    /// How a method turns the support set into parameters.
    public enum Adaptation: Sendable {
        /// MAML: `steps` inner steps from the meta-parameters (learned rates if present).
        case maml(meta: [Float], config: MetaConfig, steps: Int)
        /// Fine-tuning with Adam from model parameters `start`.
        case fineTune(start: [Float], settings: Baselines.FineTune)
        /// No adaptation: the parameters as they are (for "before adaptation" pictures).
        case none(parameters: [Float])
    }

    public struct Method: Sendable {
        public var name: String
        public var adaptation: Adaptation
        public init(name: String, adaptation: Adaptation) {
            self.name = name
            self.adaptation = adaptation
        }
    }

    /// One method's scores: per instance (mean over its query images) and per task.
    public struct MethodResult: Sendable, Codable {
        public var name: String
        public var dice: MeanCI
        public var iou: MeanCI
        public var precision: MeanCI
        public var recall: MeanCI
        /// Over instances where every query image has a defined HD95.
        public var hd95: MeanCI
        public var hd95Unit: String
        public var perTaskDice: [String: MeanCI]
        public var instanceDice: [Double]
    }

    public var source: TaskSource
    public var model: ModelSpec
    public var instances: [TaskRef]
    public var seed: UInt64
    public var support: Int
    public var query: Int

    public init(source: TaskSource, model: ModelSpec, instances: [TaskRef], seed: UInt64, support: Int, query: Int) {
        self.source = source
        self.model = model
        self.instances = instances
        self.seed = seed
        self.support = support
        self.query = query
    }

    /// Adapted parameters of `method` for one sample.
    public static func adapt(_ method: Adaptation, sample: TaskSample, network: Network<Float>,
                             learners: inout [MetaConfig: MetaLearner<Float>]) throws -> [Float] {
        switch method {
        case .maml(let meta, let config, let steps):
            var c = config
            c.supportShots = sample.supportCount
            c.queryShots = max(sample.queryCount, 1)
            if learners[c] == nil { learners[c] = try MetaLearner<Float>(config: c) }
            let adapted = learners[c]!.adapt(meta: meta, supportImages: sample.supportImages,
                                             supportMasks: sample.supportMasks, steps: steps)
            return Array(adapted.prefix(network.layout.count))
        case .fineTune(let start, let settings):
            return Baselines.fineTune(network: network, start: start, images: sample.supportImages,
                                      masks: sample.supportMasks, settings: settings)
        case .none(let parameters):
            return parameters
        }
    }

    /// Predicted binary masks (1 channel per image) for `images` at `parameters`.
    public static func predict(network: Network<Float>, parameters: [Float], images: [Float]) -> [Float] {
        let per = network.spec.input.count, plane = network.spec.input.plane
        let count = images.count / per
        var out: [Float] = []
        out.reserveCapacity(count * plane)
        var start = 0
        while start < count {
            let n = min(network.capacity, count - start)
            let logits = network.forward(parameters: parameters, images: Array(images[(start * per)..<((start + n) * per)]), batch: n)
            for j in 0..<(n * plane) { out.append(logits[j] > 0 ? 1 : 0) }
            start += n
        }
        return out
    }

    /// Runs every method on every instance on `threads` threads; results in method order.
    public func run(_ methods: [Method], threads: Int, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in })
        throws -> [MethodResult]
    {
        let model = self.model, source = self.source, seed = self.seed, support = self.support, query = self.query
        let instances = self.instances
        let jobs = methods.indices.flatMap { m in instances.indices.map { (m, $0) } }
        let done = ThreadSafeValue(0)
        typealias State = (network: Network<Float>, learners: [MetaConfig: MetaLearner<Float>])
        let pool = try ComputePool<State, IndexPair, Result<[SegmentationScores], Error>>(threads: threads) { _ in
            (try Network<Float>(spec: model, capacity: max(support, query)), [:])
        }
        let results = pool.run(jobs.map { IndexPair(method: $0.0, instance: $0.1) }) { state, job, _ in
            defer {
                let n = done.get() + 1
                done.set(n)
                progress(n, jobs.count)
            }
            return Result {
                let ref = instances[job.instance]
                let sample = try source.sample(task: ref.task, index: ref.index, seed: seed, support: support, query: query)
                let params = try Self.adapt(methods[job.method].adaptation, sample: sample, network: state.network, learners: &state.learners)
                let predicted = Self.predict(network: state.network, parameters: params, images: sample.queryImages)
                let plane = sample.shape.plane
                let spacing = sample.spacing.map { ($0[0], $0[1]) } ?? (1, 1)
                return (0..<sample.queryCount).map { q in
                    SegmentationScores(prediction: Array(predicted[(q * plane)..<((q + 1) * plane)]),
                                       truth: Array(sample.queryMasks[(q * plane)..<((q + 1) * plane)]),
                                       height: sample.shape.height, width: sample.shape.width, spacing: spacing)
                }
            }
        }
        let unit = instances.isEmpty ? "px" : ((try? source.sample(task: instances[0].task, index: instances[0].index, seed: seed,
                                                                    support: support, query: query).spacing) != nil ? "mm" : "px")
        var out: [MethodResult] = []
        for (m, method) in methods.enumerated() {
            var perInstance: [[SegmentationScores]] = []
            for i in instances.indices { perInstance.append(try results[m * instances.count + i].get()) }
            func mean(_ f: (SegmentationScores) -> Double) -> [Double] {
                perInstance.map { s in s.map(f).reduce(0, +) / Double(s.count) }
            }
            let hd: [Double] = perInstance.compactMap { s in
                let values = s.compactMap(\.hd95)
                return values.count == s.count ? values.reduce(0, +) / Double(values.count) : nil
            }
            let dice = mean(\.dice)
            var byTask: [String: [Double]] = [:]
            for (i, ref) in instances.enumerated() { byTask[source.taskNames[ref.task], default: []].append(dice[i]) }
            out.append(MethodResult(name: method.name, dice: MeanCI(dice), iou: MeanCI(mean(\.iou)),
                                    precision: MeanCI(mean(\.precision)), recall: MeanCI(mean(\.recall)),
                                    hd95: MeanCI(hd), hd95Unit: unit, perTaskDice: byTask.mapValues { MeanCI($0) },
                                    instanceDice: dice))
        }
        return out
    }

    public struct IndexPair: Sendable {
        var method: Int
        var instance: Int
    }
}
