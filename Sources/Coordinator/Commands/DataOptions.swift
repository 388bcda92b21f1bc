import ArgumentParser
import Shared

/// Options shared by every command that reads a dataset.
struct DataOptions: ParsableArguments {
    @Option(help: "Image size of the built-in synthetic family.") var syntheticSize = 64
    @Option(parsing: .singleValue,
            help: "Hold out tasks matching this glob for meta-testing (repeatable; default: the dataset's own split).")
    var holdOut: [String] = []

    func load(_ dataset: String) throws -> TaskSource {
        if dataset == "synthetic" {
            guard (16...1024).contains(syntheticSize), syntheticSize % 4 == 0 else {
                throw ValidationError("--synthetic-size must be a multiple of 4 in 16...1024")
            }
            return SyntheticFamily(size: syntheticSize)
        }
        throw ValidationError("unknown dataset '\(dataset)'")
    }

    func split(for source: TaskSource) -> TaskSplit {
        holdOut.isEmpty ? source.defaultSplit : TaskSplit(testPatterns: holdOut)
    }
}
