import MetaLearning

/// One way to adapt trained parameters to a task's support set, as a setting a study tries
/// on meta-validation and `adapt` applies: the meta-learned inner rule run longer or at
/// scaled rates, or Adam fine-tuning.
public enum AdaptationSetting: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Inner SGD steps with the (learned or fixed) inner rates scaled.
    case inner(steps: Int, rateScale: Float)
    /// Adam fine-tuning.
    case fineTune(Baselines.FineTune)

    /// The most adaptation steps any setting may take (command lines are checked against it).
    public static let maximumSteps = 10_000

    /// This setting applied to trained meta-parameters `meta` (the model's `modelCount`
    /// values first, then any learned inner rates): the inner rule runs on all of them, Adam
    /// fine-tunes the model's part (from the prototype head, as the inner loop starts, when
    /// the parameters were meta-learned with one).
    public func adaptation(meta: [Float], config: MetaConfig, modelCount: Int) -> MetaTest.Adaptation {
        switch self {
        case .inner(let steps, let scale): return .maml(meta: meta, config: config, steps: steps, rateScale: scale)
        case .fineTune(var f):
            f.prototypeHead = f.prototypeHead || config.prototypeHead
            return .fineTune(start: Array(meta.prefix(modelCount)), settings: f)
        }
    }

    /// Its number of steps.
    public var steps: Int {
        switch self {
        case .inner(let steps, _): steps
        case .fineTune(let f): f.steps
        }
    }

    public var description: String {
        switch self {
        case .inner(let steps, let scale): "\(steps) inner steps, rates x\(scale)"
        case .fineTune(let f):
            "Adam \(f.steps) steps at \(f.learningRate)\(f.headOnly ? ", head only" : "")\(f.prototypeHead ? ", from the prototype head" : "")"
        }
    }
}

extension AdaptationSetting {
    /// The same setting with `steps` steps.
    public func with(steps: Int) -> AdaptationSetting {
        switch self {
        case .inner(_, let scale): return .inner(steps: steps, rateScale: scale)
        case .fineTune(var f):
            f.steps = steps
            return .fineTune(f)
        }
    }
}
