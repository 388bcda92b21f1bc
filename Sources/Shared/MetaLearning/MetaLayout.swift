import Engine

/// The meta-parameters as one flat buffer: the model's parameters, then (with LSLR) the
/// learned inner rates, `innerSteps` per parameter tensor, named `inner_lr.<tensor>`.
public struct MetaLayout: Hashable, Sendable {
    public let model: ParameterLayout
    public let steps: Int
    public let learnedRates: Bool

    public init(config: MetaConfig) throws(MetaConfigError) {
        do {
            model = ParameterLayout(try config.model.parameterShapes())
        } catch {
            throw .invalid("\(error)")
        }
        steps = config.innerSteps
        learnedRates = config.learnedInnerRates
    }

    public var rateCount: Int { learnedRates ? model.entries.count * steps : 0 }
    public var count: Int { model.count + rateCount }

    /// Offset of the learned rate of parameter tensor `tensor` at inner step `step`.
    public func rateIndex(tensor: Int, step: Int) -> Int { model.count + tensor * steps + step }

    /// Initial meta-parameters: model initialisation from the seed, rates at `innerLearningRate`.
    public func initialValues(seed: UInt64, innerLearningRate: Float) -> [Float] {
        model.initialValues(seed: seed) + [Float](repeating: innerLearningRate, count: rateCount)
    }

    /// Named tensors (for checkpoints and `meta-gradient` files): the model's, then one
    /// `inner_lr.<name>` of shape [steps] per tensor when rates are learned.
    public var tensors: [(name: String, range: Range<Int>, shape: [Int])] {
        var out = model.entries.map { ($0.name, $0.range, $0.shape) }
        if learnedRates {
            for (t, e) in model.entries.enumerated() {
                let start = rateIndex(tensor: t, step: 0)
                out.append(("inner_lr." + e.name, start..<(start + steps), [steps]))
            }
        }
        return out
    }
}
