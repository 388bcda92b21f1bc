import ArgumentParser
import Engine

@main
struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmaml-coordinator",
        abstract: "MedMAML: distributed few-shot medical image segmentation by meta-learning.",
        subcommands: [Demo.self, Pretrain.self, Train.self, Evaluate.self, Adapt.self, MetaGradientCommand.self, DatasetsCommand.self, Keygen.self, Bench.self])

    /// Checks the environment (MEDMAML_GEMM) before any command runs: a bad value is one clear line.
    static func main() {
        do { try BLAS.checkEnvironment() } catch { exit(withError: ValidationError("\(error)")) }
        main(nil)
    }
}
