import ArgumentParser
import CommandOptions
import Core
import Datasets
import Engine
import Evaluation
import Foundation
import MetaLearning
import Training

struct MetaGradientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta-gradient",
        abstract: "Compute one task's meta-gradient from files (for checks against other frameworks).",
        discussion: """
            P holds the W1 parameters by their PyTorch names (plus inner_lr.<name> of shape [steps] \
            to use learned inner rates); T holds support.images [K,1,H,W], support.masks, \
            query.images [Q,1,H,W], query.masks. G receives one tensor per parameter. Prints \
            `query_loss <value>` (the query loss at the adapted parameters).
            """)

    @Option(help: "Parameters (safetensors).") var params: String
    @Option(help: "Task (safetensors).") var task: String
    @Option(help: "Inner SGD steps.") var innerSteps = 5
    @Option(help: "Inner learning rate (when the parameters hold no inner_lr tensors).") var innerLr: Float = 0.01
    @Option(help: "second, first or reptile.") var order: MetaOrder = .second
    @Flag(help: "MAML++ multi-step loss.") var multiStepLoss = false
    @Option(help: "Outer step, for the multi-step loss weights.") var step = 0
    @Option(help: "Outer steps over which the multi-step weights anneal.") var multiStepAnnealSteps = 100
    @Flag(help: "ANIL: the inner loop adapts only the output head.") var headOnlyInnerLoop = false
    @Flag(help: "Proto-MAML: the inner loop starts from the support set's prototype head added to the output head.")
    var prototypeHead = false
    @Option(help: "Output gradient (safetensors).") var out: String
    @Option(help: "float32 (the engine's precision) or float64 (parameters read exactly from F64 tensors, the gradient written as F64), for exactness checks against an independent float64 implementation.")
    var precision: Precision = .float32

    enum Precision: String, ExpressibleByArgument { case float32, float64 }

    func run() throws {
        let taskFile = try Safetensors.read(path: task)
        func tensor(_ name: String) throws -> Safetensors.Tensor { try taskFile.require(name, in: task) }
        let si = try tensor("support.images"), sm = try tensor("support.masks")
        let qi = try tensor("query.images"), qm = try tensor("query.masks")
        guard si.shape.count == 4, si.shape[1] == 1, qi.shape.count == 4, Array(qi.shape[1...]) == Array(si.shape[1...]) else {
            throw ValidationError("\(task): support.images and query.images must be [N,1,H,W] of one size, got \(si.shape) and \(qi.shape)")
        }
        guard sm.shape == si.shape, qm.shape == qi.shape else {
            throw ValidationError("\(task): masks must have the shapes of their images")
        }
        let (h, w) = (si.shape[2], si.shape[3])
        guard h % 4 == 0, w % 4 == 0, h >= 8, w >= 8 else {
            throw ValidationError("\(task): image size \(h)x\(w) must be a multiple of 4 (two poolings)")
        }
        let sample = TaskSample(shape: FeatureShape(channels: 1, height: h, width: w),
                                supportImages: si.values, supportMasks: sm.values,
                                queryImages: qi.values, queryMasks: qm.values)
        do { try sample.validate() } catch { throw ValidationError("\(task): \(error)") }

        let paramFile = try Safetensors.read(path: params)
        var config = MetaConfig(model: UNetConfig(height: h, width: w).spec)
        config.supportShots = sample.supportCount
        config.queryShots = sample.queryCount
        config.innerSteps = innerSteps
        config.innerLearningRate = innerLr
        config.order = order
        config.multiStepLoss = multiStepLoss
        config.multiStepAnnealSteps = multiStepAnnealSteps
        config.headOnlyInnerLoop = headOnlyInnerLoop
        config.prototypeHead = prototypeHead
        config.learnedInnerRates = paramFile.tensors.contains { $0.name.hasPrefix("inner_lr.") }
        try config.validate()
        let metadata = ["order": order.rawValue, "inner_steps": "\(innerSteps)", "precision": precision.rawValue,
                        "inner_loop": headOnlyInnerLoop ? "head" : "all", "prototype_head": "\(prototypeHead)"]
        switch precision {
        case .float32:
            let learner = try MetaLearner<Float>(config: config)
            let meta = try ParameterFile.load(paramFile, layout: learner.layout, path: params)
            var g = [Float](repeating: 0, count: learner.layout.count)
            let stats = learner.metaGradient(meta: meta, task: sample, step: step, into: &g)
            try Safetensors.write(.init(tensors: ParameterFile.tensors(g, layout: learner.layout),
                                        metadata: metadata.merging(["query_loss": "\(stats.queryLoss)"]) { a, _ in a }), to: out)
            print("query_loss \(stats.queryLoss)")
        case .float64:
            let learner = try MetaLearner<Double>(config: config)
            let meta = try ParameterFile.loadFloat64(paramFile, layout: learner.layout, path: params)
            var g = [Double](repeating: 0, count: learner.layout.count)
            let stats = learner.metaGradient(meta: meta, task: sample, step: step, into: &g)
            try Safetensors.write(.init(tensors: ParameterFile.tensors(float64: g, layout: learner.layout),
                                        metadata: metadata.merging(["query_loss": "\(stats.queryLoss)"]) { a, _ in a }), to: out)
            print("query_loss \(stats.queryLoss)")
        }
    }
}

