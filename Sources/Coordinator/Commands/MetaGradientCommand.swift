import ArgumentParser
import Engine
import MetaLearning

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
    @Option(help: "Image height and width the task holds (W1: 64, W2: 128).") var imageSize = 64
    @Option(help: "Output gradient (safetensors).") var out: String
    @Option(help: "float32 (the engine's precision) or float64 (parameters read exactly from F64 tensors, the gradient written as F64), for exactness checks against an independent float64 implementation.")
    var precision: MetaGradientFiles.Precision = .float32

    func run() throws {
        var unet = UNetConfig.w1
        (unet.height, unet.width) = (imageSize, imageSize)
        var config = MetaConfig(model: unet.spec)
        config.innerSteps = innerSteps
        config.innerLearningRate = innerLr
        config.order = order
        config.multiStepLoss = multiStepLoss
        config.multiStepAnnealSteps = multiStepAnnealSteps
        config.headOnlyInnerLoop = headOnlyInnerLoop
        config.prototypeHead = prototypeHead
        var files = MetaGradientFiles(config: config)
        files.step = step
        files.precision = precision
        do {
            print("query_loss \(try files.run(parameters: params, task: task, output: out))")
        } catch let error as MetaConfigError {
            throw ValidationError("\(error)")
        }
    }
}

extension MetaGradientFiles.Precision: ExpressibleByArgument {}
