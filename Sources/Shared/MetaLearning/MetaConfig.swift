import Engine

/// The inner loop and meta-gradient settings of one run (MAML, with the MAML++ options of
/// Antoniou et al., "How to train your MAML", ICLR 2019).
public struct MetaConfig: Codable, Hashable, Sendable {
    public var model: ModelSpec
    /// Support images per task (K) and query images per task (Q).
    public var supportShots = 5
    public var queryShots = 5
    /// Inner SGD steps (k).
    public var innerSteps = 5
    /// The inner learning rate, or the initial value of the learned rates.
    public var innerLearningRate: Float = 0.01
    /// MAML++ LSLR: one learned rate per parameter tensor and inner step, meta-parameters too.
    public var learnedInnerRates = false
    public var order: MetaOrder = .second
    /// MAML++ derivative-order annealing: first order for outer steps below this, then `order`.
    public var firstOrderSteps = 0
    /// MAML++ multi-step loss: the query loss after every inner step, weighted.
    public var multiStepLoss = false
    /// Outer steps over which the multi-step weights anneal towards the last step.
    public var multiStepAnnealSteps = 100
    /// ANIL (Raghu et al., "Rapid learning or feature reuse?", ICLR 2020): the inner loop
    /// adapts only the output head (the last node, a 1x1 convolution with a bias); the outer
    /// loop still meta-learns every parameter. The body's features are then computed once per
    /// task, so a meta-gradient costs about two forward+backward passes, whatever the steps.
    public var headOnlyInnerLoop = false
    /// Proto-MAML (Triantafillou et al., ICLR 2020): every task's inner loop starts with the
    /// support set's prototype head added to the meta-learned output head (`PrototypeHead`),
    /// and the meta-gradient flows through the prototypes into the body.
    public var prototypeHead = false

    public init(model: ModelSpec = UNetConfig.w1.spec) {
        self.model = model
    }

    private enum CodingKeys: String, CodingKey {
        case model, supportShots, queryShots, innerSteps, innerLearningRate, learnedInnerRates, order
        case firstOrderSteps, multiStepLoss, multiStepAnnealSteps, headOnlyInnerLoop, prototypeHead
    }

    /// Configurations saved before `headOnlyInnerLoop` and `prototypeHead` existed decode with
    /// the full inner loop from the meta-learned head.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(ModelSpec.self, forKey: .model)
        supportShots = try c.decode(Int.self, forKey: .supportShots)
        queryShots = try c.decode(Int.self, forKey: .queryShots)
        innerSteps = try c.decode(Int.self, forKey: .innerSteps)
        innerLearningRate = try c.decode(Float.self, forKey: .innerLearningRate)
        learnedInnerRates = try c.decode(Bool.self, forKey: .learnedInnerRates)
        order = try c.decode(MetaOrder.self, forKey: .order)
        firstOrderSteps = try c.decode(Int.self, forKey: .firstOrderSteps)
        multiStepLoss = try c.decode(Bool.self, forKey: .multiStepLoss)
        multiStepAnnealSteps = try c.decode(Int.self, forKey: .multiStepAnnealSteps)
        headOnlyInnerLoop = try c.decodeIfPresent(Bool.self, forKey: .headOnlyInnerLoop) ?? false
        prototypeHead = try c.decodeIfPresent(Bool.self, forKey: .prototypeHead) ?? false
    }

    /// Checks the settings; configurations arrive over the wire and from the command line.
    public func validate() throws(MetaConfigError) {
        do { _ = try model.validate() } catch { throw .invalid("\(error)") }
        guard (1...256).contains(supportShots), (1...256).contains(queryShots) else {
            throw .invalid("support and query shots must be in 1...256")
        }
        guard (0...1000).contains(innerSteps) else { throw .invalid("inner steps must be in 0...1000") }
        guard innerLearningRate.isFinite, innerLearningRate >= 0 else {
            throw .invalid("the inner learning rate must be finite and non-negative")
        }
        guard firstOrderSteps >= 0, multiStepAnnealSteps >= 1 else {
            throw .invalid("annealing step counts must be positive")
        }
        if order == .reptile && (learnedInnerRates || multiStepLoss) {
            throw .invalid("reptile has no query loss to learn inner rates or weight steps with")
        }
        if order == .reptile && innerSteps == 0 {
            throw .invalid("reptile needs at least one inner step")
        }
        if prototypeHead && order == .reptile {
            throw .invalid("a prototype head takes first or second order: reptile's step would drag the head towards each task's prototypes")
        }
        if headOnlyInnerLoop || prototypeHead {
            if headOnlyInnerLoop {
                guard order != .reptile, !learnedInnerRates else {
                    throw .invalid("a head-only inner loop takes first or second order, without learned inner rates")
                }
            }
            guard let f = model.headFeatures, let shapes = try? model.validate(),
                  let parameters = try? model.parameterShapes(),
                  model.headRange(ParameterLayout(parameters)).count == shapes[f].channels + 1
            else {
                throw .invalid("\(headOnlyInnerLoop ? "a head-only inner loop" : "a prototype head") needs a model whose last node is a 1x1 convolution with a bias, one output channel, reading the node before it, which nothing else reads and which has parameters upstream")
            }
        }
    }

    /// The order used at outer step `step` (derivative-order annealing).
    public func effectiveOrder(atStep step: Int) -> MetaOrder {
        order == .second && step < firstOrderSteps ? .first : order
    }

    /// MAML++ multi-step loss weights for the query losses after inner steps 1...k at outer
    /// step `step`: uniform at first, every non-final weight decaying linearly to 0.03/k over
    /// `multiStepAnnealSteps`, the final weight growing to take up the rest. Without the
    /// multi-step loss: all weight on the last step.
    public func lossWeights(atStep step: Int) -> [Float] {
        let k = innerSteps
        guard k > 0 else { return [] }
        guard multiStepLoss else { return Array(repeating: 0, count: k - 1) + [1] }
        let n = Double(k)
        let decay = 1.0 / n / Double(multiStepAnnealSteps)
        let minimum = 0.03 / n
        var w = [Double](repeating: 1.0 / n, count: k)
        for i in 0..<(k - 1) { w[i] = max(w[i] - Double(step) * decay, minimum) }
        w[k - 1] = min(w[k - 1] + Double(step) * (n - 1) * decay, 1 - (n - 1) * minimum)
        return w.map { Float($0) }
    }
}
