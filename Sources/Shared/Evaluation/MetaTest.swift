import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// The meta-test protocol: each method adapts to each sampled instance of the held-out tasks
/// from the same K labelled support images and is scored on the same Q query images.
/// An instance's score is the mean over its query images; confidence intervals are over
/// instances. This is the one scorer: `evaluate`, `demo` and the held-out evaluations during
/// training all go through `Scorer.score`.
public struct MetaTest {
    /// How a method turns the support set into parameters.
    public enum Adaptation: Sendable {
        /// MAML: `steps` inner steps from the meta-parameters, with the inner learning rates
        /// (learned or fixed) scaled by `rateScale`.
        case maml(meta: [Float], config: MetaConfig, steps: Int, rateScale: Float = 1)
        /// Fine-tuning with Adam from model parameters `start`.
        case fineTune(start: [Float], settings: Baselines.FineTune)
        /// No adaptation: the parameters as they are (for "before adaptation" pictures).
        case none(parameters: [Float])

        /// The number of steps it takes (0 for `none`).
        public var steps: Int {
            switch self {
            case .maml(_, _, let steps, _): steps
            case .fineTune(_, let settings): settings.steps
            case .none: 0
            }
        }

        /// Whether `other` follows the same trajectory, differing at most in its number of
        /// steps: then the shorter one's result is a point on the longer one's way.
        public func sharesTrajectory(with other: Adaptation) -> Bool {
            switch (self, other) {
            case let (.maml(m1, c1, _, r1), .maml(m2, c2, _, r2)): c1 == c2 && r1 == r2 && m1 == m2
            case let (.fineTune(s1, f1), .fineTune(s2, f2)):
                f1.learningRate == f2.learningRate && f1.headOnly == f2.headOnly && f1.prototypeHead == f2.prototypeHead && s1 == s2
            default: false
            }
        }
    }

    public struct Method: Sendable {
        public var name: String
        public var adaptation: Adaptation
        public init(name: String, adaptation: Adaptation) {
            self.name = name
            self.adaptation = adaptation
        }
    }

    /// One instance's scores: every query image's, and the query loss at the adapted parameters.
    public struct InstanceScore: Sendable {
        public var images: [SegmentationScores]
        public var queryLoss: Double

        /// The mean over query images of a per-image score.
        public func mean(_ score: (SegmentationScores) -> Double) -> Double {
            images.map(score).reduce(0, +) / Double(max(images.count, 1))
        }
        public var dice: Double { mean(\.dice) }
        /// Mean HD95, or nil unless every query image has one.
        public var hd95: Double? {
            let values = images.compactMap(\.hd95)
            return values.count == images.count && !values.isEmpty ? values.reduce(0, +) / Double(values.count) : nil
        }
    }

    /// Per-thread scoring state: a network sized for the shots, and MAML learners by
    /// configuration. Not thread-safe: one per thread.
    public final class Scorer {
        public let network: Network<Float>
        private var learners: [MetaConfig: MetaLearner<Float>] = [:]

        public init(model: ModelSpec, capacity: Int) throws {
            network = try Network<Float>(spec: model, capacity: capacity)
        }

        /// The adapted model parameters of `method` for one sample.
        public func adapt(_ method: Adaptation, sample: TaskSample) throws -> [Float] {
            try adapt(method, sample: sample, checkpoints: [method.steps])[0]
        }

        /// The model parameters of `method`'s trajectory after each of `checkpoints` steps (its
        /// own step count is ignored), from one run to the largest; in the order of `checkpoints`.
        public func adapt(_ method: Adaptation, sample: TaskSample, checkpoints: [Int]) throws -> [[Float]] {
            switch method {
            case .maml(var meta, let config, _, let rateScale):
                var c = config
                c.supportShots = sample.supportCount
                c.queryShots = max(sample.queryCount, 1)
                if rateScale != 1 {
                    if c.learnedInnerRates {
                        let model = network.layout.count
                        for i in model..<meta.count { meta[i] *= rateScale }
                    } else {
                        c.innerLearningRate *= rateScale
                    }
                }
                if learners[c] == nil { learners[c] = try MetaLearner<Float>(config: c) }
                return learners[c]!.adapt(meta: meta, supportImages: sample.supportImages, supportMasks: sample.supportMasks,
                                          checkpoints: checkpoints).map { Array($0.prefix(network.layout.count)) }
            case .fineTune(let start, let settings):
                return Baselines.fineTune(network: network, start: start, images: sample.supportImages,
                                          masks: sample.supportMasks, settings: settings, checkpoints: checkpoints)
            case .none(let parameters):
                return checkpoints.map { _ in Array(parameters.prefix(network.layout.count)) }
            }
        }

        /// Binary predictions (1 channel per image, 0 or 1) for `images` at `parameters`.
        public func predict(parameters: [Float], images: [Float]) -> [Float] {
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

        /// Adapts `method` to the sample's support set and scores every query image.
        public func score(_ method: Adaptation, sample: TaskSample) throws -> InstanceScore {
            score(parameters: try adapt(method, sample: sample), sample: sample)
        }

        /// Scores adapted parameters on every query image of the sample.
        public func score(parameters: [Float], sample: TaskSample) -> InstanceScore {
            let predicted = predict(parameters: parameters, images: sample.queryImages)
            let plane = sample.shape.plane
            let spacing = sample.spacing.map { ($0[0], $0[1]) } ?? (1, 1)
            let images = (0..<sample.queryCount).map { q in
                SegmentationScores(prediction: Array(predicted[(q * plane)..<((q + 1) * plane)]),
                                   truth: Array(sample.queryMasks[(q * plane)..<((q + 1) * plane)]),
                                   height: sample.shape.height, width: sample.shape.width, spacing: spacing)
            }
            var loss: Double = .nan
            if sample.queryCount > 0 && sample.queryCount <= network.capacity {
                let logits = network.forward(parameters: parameters, images: sample.queryImages, batch: sample.queryCount)
                loss = Double(network.loss.forward(logits: logits, masks: sample.queryMasks, batch: sample.queryCount).total)
            }
            return InstanceScore(images: images, queryLoss: loss)
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

    /// Methods whose adaptations differ only in their number of steps, run once to the longest
    /// and scored at each method's count.
    public struct Trajectory: Sendable {
        /// The first method's adaptation (its own step count is not used).
        public var adaptation: Adaptation
        /// The methods on it, and the number of steps each takes.
        public var methods: [Int]
        public var checkpoints: [Int]
    }

    /// Groups methods by trajectory, in order of first appearance.
    public static func trajectories(_ methods: [Method]) -> [Trajectory] {
        var out: [Trajectory] = []
        for (m, method) in methods.enumerated() {
            let a = method.adaptation
            if let t = out.firstIndex(where: { $0.adaptation.sharesTrajectory(with: a) }) {
                out[t].methods.append(m)
                out[t].checkpoints.append(a.steps)
            } else {
                out.append(Trajectory(adaptation: a, methods: [m], checkpoints: [a.steps]))
            }
        }
        return out
    }

    /// What `run` throws when `stop` asked it to end early.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "the meta-test was stopped before every adaptation ran" }
    }

    /// Runs every method on every instance on `threads` threads; results in method order.
    /// Methods that differ only in their number of steps (the same start, rates and kind of
    /// adaptation) share one run per instance, to the longest, scored at each one's count:
    /// the results are those of running each alone, for the cost of the longest.
    ///
    /// `stop` is asked before each adaptation: once it says yes, the adaptations not yet
    /// started are skipped (without progress) and the run throws `Stopped`.
    public func run(_ methods: [Method], threads: Int, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
                    stop: @escaping @Sendable () -> Bool = { false }) throws -> [MethodResult]
    {
        let model = self.model, source = self.source, seed = self.seed, support = self.support, query = self.query
        let instances = self.instances
        let trajectories = Self.trajectories(methods)
        let jobs = trajectories.indices.flatMap { t in instances.indices.map { JobIndex(trajectory: t, instance: $0) } }
        let done = Locked(0)
        let pool = try ComputePool<Scorer, JobIndex, Result<[InstanceScore], Error>>(threads: threads) { _ in
            try Scorer(model: model, capacity: max(support, query))
        }
        let scored = pool.run(jobs) { scorer, job, _ in
            if stop() { return .failure(Stopped()) }
            defer { progress(done.withLock { $0 += 1; return $0 }, jobs.count) }
            return Result {
                let ref = instances[job.instance], trajectory = trajectories[job.trajectory]
                let sample = try source.sample(task: ref.task, index: ref.index, seed: seed, support: support, query: query)
                return try scorer.adapt(trajectory.adaptation, sample: sample, checkpoints: trajectory.checkpoints)
                    .map { scorer.score(parameters: $0, sample: sample) }
            }
        }
        if scored.contains(where: { if case .failure(let e) = $0 { e is Stopped } else { false } }) { throw Stopped() }
        var results = [Result<InstanceScore, Error>?](repeating: nil, count: methods.count * instances.count)
        for (j, job) in jobs.enumerated() {
            for (c, m) in trajectories[job.trajectory].methods.enumerated() {
                results[m * instances.count + job.instance] = scored[j].map { $0[c] }
            }
        }
        let unit = instances.isEmpty ? "px" : ((try? source.sample(task: instances[0].task, index: instances[0].index, seed: seed,
                                                                    support: support, query: query).spacing) != nil ? "mm" : "px")
        var out: [MethodResult] = []
        for (m, method) in methods.enumerated() {
            var perInstance: [InstanceScore] = []
            for i in instances.indices { perInstance.append(try results[m * instances.count + i]!.get()) }
            let dice = perInstance.map(\.dice)
            var byTask: [String: [Double]] = [:]
            for (i, ref) in instances.enumerated() { byTask[source.taskNames[ref.task], default: []].append(dice[i]) }
            out.append(MethodResult(name: method.name, dice: MeanCI(dice), iou: MeanCI(perInstance.map { $0.mean(\.iou) }),
                                    precision: MeanCI(perInstance.map { $0.mean(\.precision) }),
                                    recall: MeanCI(perInstance.map { $0.mean(\.recall) }),
                                    hd95: MeanCI(perInstance.compactMap(\.hd95)), hd95Unit: unit,
                                    perTaskDice: byTask.mapValues { MeanCI($0) }, instanceDice: dice))
        }
        return out
    }

    struct JobIndex: Sendable {
        var trajectory: Int
        var instance: Int
    }
}
