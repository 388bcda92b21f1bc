import ArgumentParser
import Evaluation
import MetaLearning
import Training

/// How a trained model adapts to a new task's labelled examples: `adapt`, `predict` and
/// `evaluate` take these, with the names a study's settings use.
public struct AdaptationOptions: ParsableArguments {
    public init() {}
    @Option(help: "Labelled examples (K) to adapt from, at most.") public var shots = 5
    @Option(help: "Adaptation steps: inner steps (default: as trained), or Adam steps with --adam-rate (default 100).") public var steps: Int?
    @Option(help: "Scale the inner learning rates (learned or fixed) by this factor, as a study's settings do (0.5, 2, 4).")
    public var rateScale: Float = 1
    @Option(help: "Adapt by Adam fine-tuning of the trained initialisation at this learning rate instead of the inner rule (a setting a study may choose for MAML).")
    public var adamRate: Float?

    public func validate() throws {
        guard (1...256).contains(shots) else { throw ValidationError("--shots must be in 1...256") }
        if let steps, !(0...AdaptationSetting.maximumSteps).contains(steps) {
            throw ValidationError("--steps must be in 0...\(AdaptationSetting.maximumSteps)")
        }
        guard rateScale.isFinite, rateScale > 0, rateScale <= 1000 else { throw ValidationError("--rate-scale must be a number in (0, 1000]") }
        if let adamRate {
            guard adamRate.isFinite, adamRate > 0, adamRate <= 1 else { throw ValidationError("--adam-rate must be a number in (0, 1]") }
            guard rateScale == 1 else { throw ValidationError("--rate-scale scales the inner rule's rates; it does not apply with --adam-rate") }
        }
    }

    /// The setting these flags name for `model`, and its description.
    public func setting(for model: TrainedModel) -> AdaptationSetting {
        if let adamRate { return .fineTune(.init(steps: steps ?? 100, learningRate: adamRate)) }
        return .inner(steps: steps ?? model.config.innerSteps, rateScale: rateScale)
    }

    /// The adaptation of `model` with these flags.
    public func adaptation(_ model: TrainedModel) throws -> MetaTest.Adaptation {
        setting(for: model).adaptation(meta: model.meta, config: model.config, modelCount: try MetaLayout(config: model.config).model.count)
    }
}
