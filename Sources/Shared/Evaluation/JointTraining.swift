import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// Ordinary supervised training on the meta-train tasks (the transfer baselines): the same
/// task samples meta-training draws (support and query images of each meta-batch's tasks,
/// all labelled), in mini-batches of K images, with Adam.
///
/// With one shared output head, tasks that label the same images differently give the head
/// contradictory targets; with a head per task (`Heads.perTask`) each meta-train task trains
/// its own head on a shared body, which removes the conflict (the baseline a careful
/// reviewer asks for). A new task then starts from the body and the mean of the task heads.
/// With a head per structure class (`Heads.multiClass`, on a `LabelMapSource`) it is a
/// multi-class segmenter trained on full label maps, the transfer baseline of a task universe,
/// where no fixed set of task heads exists.
public struct JointTraining {
    public enum Heads: String, Codable, Sendable {
        case shared, perTask
        /// One sigmoid output per structure class, trained on the images' full label maps.
        case multiClass
    }

    public struct Settings: Codable, Hashable, Sendable {
        public var heads: Heads
        public var learningRate: Float
        /// Meta-batches of task samples (the data of this many meta-training steps).
        public var steps: Int
        /// Cosine decay of the learning rate to zero over the run (as meta-training's).
        public var cosine = false
        public init(heads: Heads, learningRate: Float, steps: Int, cosine: Bool = false) {
            self.heads = heads
            self.learningRate = learningRate
            self.steps = steps
            self.cosine = cosine
        }
    }

    /// A jointly trained model: the parameters (the shared head, or the mean of the task
    /// heads, in the head's place) and, with per-task heads, each task's head.
    public struct Model: Sendable {
        public var parameters: [Float]
        public var heads: [Int: [Float]]
    }

    public let config: TrainingConfig
    public let source: TaskSource
    public let trainTasks: [Int]
    public let settings: Settings

    public init(config: TrainingConfig, source: TaskSource, trainTasks: [Int], settings: Settings) {
        self.config = config
        self.source = source
        self.trainTasks = trainTasks
        self.settings = settings
    }

    /// Trains from `initial` (model parameters). `snapshot(step, model)` is called after each
    /// meta-batch's worth of samples (for curves against budget); it may return false to stop.
    public func train(initial: [Float], snapshot: (Int, Model) -> Bool = { _, _ in true }) throws -> Model {
        if settings.heads == .multiClass { return try trainMultiClass(initial: initial, snapshot: snapshot) }
        let network = try Network<Float>(spec: config.meta.model, capacity: config.meta.supportShots)
        let head = config.meta.model.headRange(network.layout)
        let batch = config.meta.supportShots
        var adam = Adam(learningRate: settings.learningRate)
        if settings.cosine {
            // Updates per step: each task's support and query images in mini-batches of K
            // (with per-task heads, the body's state counts every update).
            let perSample = (config.meta.supportShots + batch - 1) / batch + (config.meta.queryShots + batch - 1) / batch
            adam.cosineSteps = settings.steps * config.metaBatch * perSample
        }
        // A task's head is updated only with its own task's samples: its schedule spans
        // its expected share of the updates.
        var headAdam = adam
        if let total = adam.cosineSteps { headAdam.cosineSteps = max(total / max(trainTasks.count, 1), 1) }
        var params = initial
        var state = Adam.State(count: settings.heads == .perTask ? head.lowerBound : params.count)
        var heads: [Int: (values: [Float], state: Adam.State)] = [:]
        if settings.heads == .perTask {
            for t in trainTasks { heads[t] = (Array(initial[head]), Adam.State(count: head.count)) }
        }
        var g = [Float](repeating: 0, count: params.count)
        var model = Model(parameters: params, heads: [:])
        for step in 0..<settings.steps {
            let refs = TaskSampler.metaBatch(step: step, seed: config.seed, pool: trainTasks, size: config.metaBatch)
            let drawn = try source.samples(refs, seed: config.seed, support: config.meta.supportShots, query: config.meta.queryShots)
            for (ref, s) in zip(refs, drawn) {
                for (images, masks, count) in [(s.supportImages, s.supportMasks, s.supportCount), (s.queryImages, s.queryMasks, s.queryCount)] {
                    var start = 0
                    while start < count {
                        let n = min(batch, count - start)
                        let per = s.shape.count, plane = s.shape.plane
                        if let h = heads[ref.task] { params.replaceSubrange(head, with: h.values) }
                        _ = network.gradient(parameters: params, images: Array(images[(start * per)..<((start + n) * per)]),
                                             masks: Array(masks[(start * plane)..<((start + n) * plane)]), batch: n, into: &g)
                        if var h = heads[ref.task] {
                            // The body with the shared state, the task's head with its own.
                            adam.update(parameters: &params, range: 0..<head.lowerBound, gradient: g, state: &state)
                            headAdam.update(parameters: &h.values, gradient: Array(g[head]), state: &h.state)
                            heads[ref.task] = h
                        } else {
                            adam.update(parameters: &params, range: params.indices, gradient: g, state: &state)
                        }
                        start += n
                    }
                }
            }
            model = Self.model(params, heads: heads.mapValues(\.values), head: head)
            guard snapshot(step + 1, model) else { break }
        }
        return model
    }

    /// The parameters with the mean of the task heads in the head's place.
    static func model(_ params: [Float], heads: [Int: [Float]], head: Range<Int>) -> Model {
        var p = params
        if !heads.isEmpty {
            var mean = [Float](repeating: 0, count: head.count)
            for t in heads.keys.sorted() { for i in mean.indices { mean[i] += heads[t]![i] } }
            for i in mean.indices { mean[i] /= Float(heads.count) }
            p.replaceSubrange(head, with: mean)
        }
        return Model(parameters: p, heads: heads)
    }

    /// Multi-class training: each meta-batch's images (the images its tasks' samples show)
    /// with their full label maps, in mini-batches of K, one body pass per mini-batch and a
    /// head per class (`MultiClassHeads`); the body and the heads each with Adam.
    private func trainMultiClass(initial: [Float], snapshot: (Int, Model) -> Bool) throws -> Model {
        guard let labelled = source as? LabelMapSource else {
            throw MetaConfigError.invalid("multi-class training needs a dataset with full label maps (the task universe)")
        }
        let network = try Network<Float>(spec: config.meta.model, capacity: config.meta.supportShots)
        guard let f = network.spec.headFeatures else { throw MetaConfigError.invalid("multi-class training needs a model with a linear output head") }
        let head = config.meta.model.headRange(network.layout)
        let batch = config.meta.supportShots
        let channels = network.shapes[f].channels, pixels = network.shapes[f].plane
        let heads = MultiClassHeads<Float>(channels: channels, pixels: pixels, classes: labelled.classCount, capacity: batch)
        var adam = Adam(learningRate: settings.learningRate)
        let perSample = (config.meta.supportShots + config.meta.queryShots + batch - 1) / batch
        if settings.cosine { adam.cosineSteps = settings.steps * config.metaBatch * perSample }
        var params = initial
        var state = Adam.State(count: head.lowerBound)
        var classHeads = (0..<labelled.classCount).flatMap { _ in Array(initial[head]) }
        var headState = Adam.State(count: classHeads.count)
        var g = [Float](repeating: 0, count: params.count)
        var hg = [Float](repeating: 0, count: classHeads.count)
        var cotangent = [Float](repeating: 0, count: batch * channels * pixels)
        func model() -> Model {
            var p = params, mean = [Float](repeating: 0, count: head.count)
            for k in 0..<labelled.classCount { for i in mean.indices { mean[i] += classHeads[k * head.count + i] } }
            for i in mean.indices { mean[i] /= Float(labelled.classCount) }
            p.replaceSubrange(head, with: mean)
            return Model(parameters: p, heads: Dictionary(uniqueKeysWithValues: (0..<labelled.classCount).map {
                ($0 + 1, Array(classHeads[($0 * head.count)..<(($0 + 1) * head.count)]))
            }))
        }
        let count = config.meta.supportShots + config.meta.queryShots
        let per = config.meta.model.input.count, plane = config.meta.model.input.plane
        for step in 0..<settings.steps {
            let refs = TaskSampler.metaBatch(step: step, seed: config.seed, pool: trainTasks, size: config.metaBatch)
            for ref in refs {
                let (images, labels) = labelled.labelledImages(index: ref.index, seed: config.seed, count: count)
                var start = 0
                while start < count {
                    let n = min(batch, count - start)
                    for i in g.indices { g[i] = 0 }
                    for i in hg.indices { hg[i] = 0 }
                    images.withUnsafeBufferPointer { im in
                        labels.withUnsafeBufferPointer { lb in
                            params.withUnsafeBufferPointer { pp in
                                let features = network.features(parameters: pp.baseAddress!, images: im.baseAddress! + start * per, batch: n)
                                _ = heads.lossAndGradient(features: features, labels: lb.baseAddress! + start * plane, batch: n,
                                                          heads: classHeads, featureCotangent: &cotangent, headGradient: &hg)
                                network.backward(parameters: pp.baseAddress!, featureCotangent: cotangent, batch: n, into: &g)
                            }
                        }
                    }
                    adam.update(parameters: &params, range: 0..<head.lowerBound, gradient: g, state: &state)
                    adam.update(parameters: &classHeads, gradient: hg, state: &headState)
                    start += n
                }
            }
            guard snapshot(step + 1, model()) else { break }
        }
        return model()
    }
}
