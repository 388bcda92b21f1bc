import ArgumentParser

@main
struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmaml-coordinator",
        abstract: "MedMAML: distributed few-shot medical image segmentation by meta-learning.",
        subcommands: [Demo.self, Pretrain.self, Train.self, Evaluate.self, Adapt.self, MetaGradientCommand.self, DatasetsCommand.self, Keygen.self, Bench.self])
}
