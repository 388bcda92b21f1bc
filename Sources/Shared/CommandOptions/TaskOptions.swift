import ArgumentParser
import Engine
import MetaLearning

/// The tasks each training step draws and the inner loop that adapts to them.
public struct TaskOptions: ParsableArguments {
    public init() {}
    @Option(help: "Labelled support images per task (K).") public var shots = 5
    @Option(help: "Query images per task (Q).") public var query = 5
    @Option(help: "Tasks per meta-batch, and per joint-training step (default 8; the demo's 4).") public var metaBatch: Int?
    @Option(help: "Inner SGD steps in meta-training.") public var innerSteps = 5
    @Option(help: "Inner learning rate (the initial value when learned).") public var innerLr: Float = 0.01
    @Option(help: "Seed of initialisation and task sampling.") public var seed: UInt64 = 0
}

/// How meta-training learns: the algorithm, its MAML++ options and the outer optimiser.
public struct RecipeOptions: ParsableArguments {
    public init() {}
    @Option(help: "Outer (meta) steps.") public var outerSteps = 1000
    @Option(help: "Meta-gradient: second (exact MAML), first (FOMAML) or reptile.") public var order: MetaOrder = .second
    @Option(help: "Outer Adam learning rate.") public var metaLr: Float = 1e-3
    @Flag(help: "MAML++ LSLR: learn one inner rate per parameter tensor and step.") public var learnedInnerRates = false
    @Flag(help: "MAML++ multi-step loss.") public var multiStepLoss = false
    @Option(help: "Outer steps over which the multi-step loss anneals.") public var multiStepAnnealSteps = 100
    @Option(help: "MAML++ derivative-order annealing: first order for this many outer steps.") public var firstOrderSteps = 0
    @Flag(help: "ANIL: the inner loop adapts only the output head (the outer loop still learns every parameter).")
    public var headOnlyInnerLoop = false
    @Flag(help: "Proto-MAML: each task's inner loop starts from its support set's prototype head added to the output head.")
    public var prototypeHead = false
    @Option(help: "Clip the meta-gradient to this global norm.") public var clipNorm: Float?
    @Flag(help: "Cosine decay of the meta learning rate to zero over the run.") public var cosine = false
}

extension MetaOrder: ExpressibleByArgument {}

/// The one place a command's flags become a `TrainingConfig`: the model, the task shape and
/// inner loop, and (for commands that meta-train) the recipe; without one, the recipe's
/// defaults (a study's candidates bring their own).
public func trainingConfig(size: Int, model: ModelOptions, tasks: TaskOptions, recipe: RecipeOptions? = nil,
                    preset: Preset = .standard) throws -> TrainingConfig {
    var c = TrainingConfig()
    c.meta = MetaConfig(model: model.unet(size: size, preset: preset).spec)
    c.meta.supportShots = tasks.shots
    c.meta.queryShots = tasks.query
    c.meta.innerSteps = tasks.innerSteps
    c.meta.innerLearningRate = tasks.innerLr
    c.metaBatch = tasks.metaBatch ?? preset.metaBatch
    c.seed = tasks.seed
    if let recipe {
        c.meta.learnedInnerRates = recipe.learnedInnerRates
        c.meta.order = recipe.order
        c.meta.firstOrderSteps = recipe.firstOrderSteps
        c.meta.multiStepLoss = recipe.multiStepLoss
        c.meta.multiStepAnnealSteps = recipe.multiStepAnnealSteps
        c.meta.headOnlyInnerLoop = recipe.headOnlyInnerLoop
        c.meta.prototypeHead = recipe.prototypeHead
        c.optimizer = Adam(learningRate: recipe.metaLr)
        c.optimizer.clipNorm = recipe.clipNorm
        if recipe.cosine { c.optimizer.cosineSteps = recipe.outerSteps }
        c.steps = recipe.outerSteps
    }
    do { try c.validate() } catch { throw ValidationError("\(error)") }
    return c
}
