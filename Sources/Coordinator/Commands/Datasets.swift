import ArgumentParser
import CommandOptions
import Datasets
import Foundation
import Pretraining
import Training

struct DatasetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasets",
        abstract: "Inspect datasets and look at their tasks.",
        subcommands: [Inspect.self, PreviewCommand.self, ITKFoldCommand.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a dataset's tasks, sizes, label fractions and meta-train/meta-test split.")
        @Argument(help: "A dataset folder, or \"synthetic\".") var dataset = "synthetic"
        @OptionGroup var data: DataOptions
        @OptionGroup var input: InputSizeOptions

        func run() throws {
            let source = try data.load(dataset, size: input.size(), logger: makeLogger(.warning))
            print(try DatasetReport(source: source, split: data.split(for: source)).text)
            if let volumes = source as? DecathlonDataset {
                print("\nvolumes:")
                for line in volumes.caseSummaries { print("  " + line) }
            }
        }
    }

    struct PreviewCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "preview",
            abstract: "Write a picture of task samples: support and query images with masks outlined.")
        @Argument(help: "A task name, a glob such as 'synthetic/*/ct', or \"all\".") var task = "all"
        @Option(help: "A dataset folder, or \"synthetic\".") var dataset = "synthetic"
        @Option(help: "Output PNG file.") var out: String
        @Option(help: "Support images per row.") var shots = 5
        @Option(help: "Query images per row.") var query = 3
        @Option(help: "Sampling seed.") var seed: UInt64 = 0
        @Option(help: "Pixels per image pixel.") var zoom = 2
        @Flag(help: "Show the self-supervised pretraining pseudo-tasks built from the dataset's unlabelled images.") var pseudo = false
        @OptionGroup var data: DataOptions
        @OptionGroup var input: InputSizeOptions

        func run() throws {
            let source = pseudo
                ? try DatasetSpec.openPseudo(dataset, options: data.volumeOptions(size: input.size()), pseudo: PseudoTaskOptions(),
                                             includeTraining: true, logger: makeLogger(.warning)).1
                : try data.load(dataset, size: input.size(), logger: makeLogger(.warning))
            let pattern = task == "all" ? "*" : task
            let tasks = source.taskNames.indices.filter { TaskSplit.matches(pattern, source.taskNames[$0]) }
            guard !tasks.isEmpty else { throw ValidationError("no task matches '\(task)'") }
            try Preview.tasks(source, tasks: tasks, support: shots, query: query, seed: seed, zoom: zoom).write(to: out)
            FileHandle.standardError.write(Data("wrote \(out): \(tasks.count) task(s), one per row\n".utf8))
        }
    }

    struct ITKFoldCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "itk-fold",
            abstract: "Build the real-scan fold from Debian's insighttoolkit5-examples: one T1 MRI with a k-means tissue segmentation, as a Decathlon-layout dataset in two halves.",
            discussion: """
                Tasks: five k-means tissue classes (an algorithm's labels, not an expert's). \
                The volume is cut in two halves along its third axis, one case each, so that with \
                --separate-volumes the support comes from one half and the query from the other. \
                One subject is a smoke test of transfer to real scans, not a benchmark. Needs \
                `apt-get install insighttoolkit5-examples`.
                """)
        @Option(help: "Output folder.") var out: String
        @Option(help: "Where the package installed its data.") var from = ITKFold.defaultSource

        func run() throws {
            let names = try ITKFold.write(from: from, to: out)
            note("wrote \(out): \(names.dropFirst().joined(separator: ", "))")
        }
    }
}
