import Core
import Engine

/// One task's meta-gradient from files, for checks against other frameworks: the parameters
/// by their PyTorch names (plus `inner_lr.<name>` tensors of shape [steps] for learned inner
/// rates), the task as `support.images` [K,1,H,W], `support.masks`, `query.images` [Q,1,H,W],
/// `query.masks`; the gradient written with one tensor per parameter.
public struct MetaGradientFiles {
    /// float32: the engine's precision; float64: parameters read exactly from F64 tensors and
    /// the gradient written as F64, for exactness checks against a float64 implementation.
    public enum Precision: String, Sendable { case float32, float64 }

    /// The learner's settings; the task's shots and image size come from the task file, and
    /// learned inner rates from the parameter file.
    public var config: MetaConfig
    public var step = 0
    public var precision = Precision.float32

    public init(config: MetaConfig) {
        self.config = config
    }

    /// Reads the task and parameters, writes the gradient to `output`, and returns the query
    /// loss at the adapted parameters.
    public func run(parameters: String, task: String, output: String) throws -> Float {
        let taskFile = try Safetensors.read(path: task)
        func tensor(_ name: String) throws -> Safetensors.Tensor { try taskFile.require(name, in: task) }
        let si = try tensor("support.images"), sm = try tensor("support.masks")
        let qi = try tensor("query.images"), qm = try tensor("query.masks")
        guard si.shape.count == 4, si.shape[1] == 1, qi.shape.count == 4, Array(qi.shape[1...]) == Array(si.shape[1...]) else {
            throw MetaConfigError.invalid("\(task): support.images and query.images must be [N,1,H,W] of one size, got \(si.shape) and \(qi.shape)")
        }
        guard sm.shape == si.shape, qm.shape == qi.shape else { throw MetaConfigError.invalid("\(task): masks must have the shapes of their images") }
        let (h, w) = (si.shape[2], si.shape[3])
        guard h % 4 == 0, w % 4 == 0, h >= 8, w >= 8 else {
            throw MetaConfigError.invalid("\(task): image size \(h)x\(w) must be a multiple of 4 (two poolings)")
        }
        let sample = TaskSample(shape: FeatureShape(channels: 1, height: h, width: w), supportImages: si.values, supportMasks: sm.values,
                                queryImages: qi.values, queryMasks: qm.values)
        do { try sample.validate() } catch { throw MetaConfigError.invalid("\(task): \(error)") }

        let paramFile = try Safetensors.read(path: parameters)
        var config = self.config
        config.model = UNetConfig(height: h, width: w).spec
        config.supportShots = sample.supportCount
        config.queryShots = sample.queryCount
        config.learnedInnerRates = paramFile.tensors.contains { $0.name.hasPrefix("inner_lr.") }
        try config.validate()
        var metadata = ["order": config.order.rawValue, "inner_steps": "\(config.innerSteps)", "precision": precision.rawValue,
                        "inner_loop": config.headOnlyInnerLoop ? "head" : "all", "prototype_head": "\(config.prototypeHead)"]
        let tensors: [(name: String, tensor: Safetensors.Tensor)], loss: Float
        switch precision {
        case .float32:
            let learner = try MetaLearner<Float>(config: config)
            let meta = try ParameterFile.load(paramFile, layout: learner.layout, path: parameters)
            var g = [Float](repeating: 0, count: learner.layout.count)
            loss = learner.metaGradient(meta: meta, task: sample, step: step, into: &g).queryLoss
            tensors = ParameterFile.tensors(g, layout: learner.layout)
        case .float64:
            let learner = try MetaLearner<Double>(config: config)
            let meta = try ParameterFile.loadFloat64(paramFile, layout: learner.layout, path: parameters)
            var g = [Double](repeating: 0, count: learner.layout.count)
            loss = learner.metaGradient(meta: meta, task: sample, step: step, into: &g).queryLoss
            tensors = ParameterFile.tensors(float64: g, layout: learner.layout)
        }
        metadata["query_loss"] = "\(loss)"
        try Safetensors.write(.init(tensors: tensors, metadata: metadata), to: output)
        return loss
    }
}
