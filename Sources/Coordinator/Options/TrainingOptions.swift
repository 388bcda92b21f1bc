import ArgumentParser
import Engine
import MetaLearning

/// Model and meta-learning flags shared by `train`, `pretrain` and `demo`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Outer (meta) steps.") var steps = 1000
    @Option(help: "Tasks per meta-batch.") var metaBatch = 8
    @Option(help: "Seed of initialisation and task sampling.") var seed: UInt64 = 0
    @Option(help: "Meta-gradient: second (exact MAML), first (FOMAML) or reptile.") var order: MetaOrder = .second
    @Option(help: "Inner SGD steps.") var innerSteps = 5
    @Option(help: "Inner learning rate (initial value when learned).") var innerLr: Float = 0.01
    @Option(help: "Outer Adam learning rate.") var metaLr: Float = 1e-3
    @Option(help: "Support images per task (K).") var support = 5
    @Option(help: "Query images per task (Q).") var query = 5
    @Flag(help: "MAML++ LSLR: learn one inner rate per parameter tensor and step.") var learnedInnerRates = false
    @Flag(help: "MAML++ multi-step loss.") var multiStepLoss = false
    @Flag(help: "ANIL: the inner loop adapts only the output head (the outer loop still learns every parameter).")
    var headOnlyInnerLoop = false
    @Flag(help: "Proto-MAML: each task's inner loop starts from its support set's prototype head added to the output head.")
    var prototypeHead = false
    @Option(help: "Outer steps over which the multi-step loss anneals.") var multiStepAnnealSteps = 100
    @Option(help: "MAML++ derivative-order annealing: first order for this many outer steps.") var firstOrderSteps = 0
    @Option(help: "Clip the meta-gradient to this global norm.") var clipNorm: Float?
    @Flag(help: "Cosine decay of the meta learning rate to zero over the run.") var cosine = false
    @Option(help: "U-Net depth (poolings).") var depth = 2
    @Option(help: "U-Net channels of the first level.") var baseChannels = 16
    @Option(help: "GroupNorm groups.") var groups = 4

    func config(imageSize: Int) throws -> TrainingConfig {
        var c = TrainingConfig()
        c.meta = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize, depth: depth,
                                              baseChannels: baseChannels, groups: groups).spec)
        c.meta.supportShots = support
        c.meta.queryShots = query
        c.meta.innerSteps = innerSteps
        c.meta.innerLearningRate = innerLr
        c.meta.learnedInnerRates = learnedInnerRates
        c.meta.order = order
        c.meta.firstOrderSteps = firstOrderSteps
        c.meta.multiStepLoss = multiStepLoss
        c.meta.multiStepAnnealSteps = multiStepAnnealSteps
        c.meta.headOnlyInnerLoop = headOnlyInnerLoop
        c.meta.prototypeHead = prototypeHead
        c.optimizer = Adam(learningRate: metaLr)
        c.optimizer.clipNorm = clipNorm
        if cosine { c.optimizer.cosineSteps = steps }
        c.metaBatch = metaBatch
        c.steps = steps
        c.seed = seed
        try c.validate()
        return c
    }
}

extension MetaOrder: ExpressibleByArgument {}
