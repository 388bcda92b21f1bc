import ArgumentParser
import Benchmarks
import CommandOptions
import Engine
import MetaLearning

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that report numbers (release builds only; docs/WORKLOADS.md defines W1 and W2).",
        subcommands: [EngineBench.self, MAMLBench.self, DataBench.self, ScaleBench.self, NumericsBench.self])
}

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Forward, forward+backward and Hessian-vector product (recomputed and replayed), single-threaded: W1, or W2 with --image-size 128.")

    @Option(help: "Images per batch.") var batch = 5
    @OptionGroup var input: InputSizeOptions
    @Option(help: "Channels of the U-Net's first level (W1: 16; the demo's model: 8).") var baseChannels = 16
    @Option(help: "Timed repetitions (the median is reported).") var repetitions = 20
    @Flag(help: "Time every layer and matrix product: where each pass's time goes, and the share outside matrix products.")
    var profile = false
    @OptionGroup var numerics: NumericsOptions

    func run() throws {
        guard batch >= 1, repetitions >= 1 else { throw ValidationError("--batch and --repetitions must be positive") }
        try applyNumerics(numerics.settings())
        let bench = EngineBenchmark(config: UNetConfig(height: input.size(), width: input.size(), baseChannels: baseChannels),
                                    batch: batch, repetitions: repetitions)
        print(profile ? try bench.profile() : try bench.report())
    }
}

struct MAMLBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maml",
        abstract: "Meta-gradient throughput on task threads in one process (W1; W2 with --image-size 128); last line: tasks_per_second.")

    @Option(help: "second, first or reptile.") var order: MetaOrder = .second
    @Option(help: "Task threads.") var threads = 2
    @Option(help: "Timed tasks.") var tasks = 16
    @OptionGroup var input: InputSizeOptions
    @Option(help: "Channels of the U-Net's first level (W1: 16; the map's model: 8).") var baseChannels = 16
    @Option(help: "Tasks from \"synthetic\" or \"universe\".") var dataset = "synthetic"
    @Flag(help: "ANIL: the inner loop adapts only the output head.") var headOnlyInnerLoop = false
    @Flag(help: "Proto-MAML: each task starts from its support set's prototype head.") var prototypeHead = false
    @OptionGroup var numerics: NumericsOptions

    func run() throws {
        guard threads >= 1, tasks >= 1 else { throw ValidationError("--threads and --tasks must be positive") }
        guard ["synthetic", "universe"].contains(dataset) else { throw ValidationError("--dataset takes synthetic or universe") }
        try applyNumerics(numerics.settings())
        let bench = MAMLBenchmark(config: MAMLBenchmark.workload(imageSize: input.size(), baseChannels: baseChannels, order: order,
                                                                 headOnlyInnerLoop: headOnlyInnerLoop, prototypeHead: prototypeHead),
                                  dataset: dataset, threads: threads, tasks: tasks)
        print(bench.description)
        print(String(format: "tasks_per_second %.4f", try bench.run()))
    }
}

struct DataBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Data generation against training: synthetic images against a W1 forward pass; the universe's samples per second against the map's training tasks per second.")

    @Option(help: "Images (synthetic) or samples (universe) per measurement.") var images = 40
    @Option(help: "\"synthetic\" or \"universe\".") var dataset = "synthetic"

    func run() throws {
        switch dataset {
        case "synthetic": print(try DataBenchmark(images: images).synthetic())
        case "universe": print(try DataBenchmark(images: images).universe())
        default: throw ValidationError("--dataset takes synthetic or universe")
        }
    }
}

struct ScaleBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Coordinator time per step against many simulated workers (W1-sized gradients, one task each).")

    @Option(help: "Comma-separated simulated worker counts.") var workers = "8,64,256"
    @Option(help: "Steps per measurement (the first is left out).") var steps = 6
    @Flag(help: "With CURVE encryption.") var secure = false

    func run() throws {
        let counts = workers.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ (1...1000).contains($0) }), steps >= 2 else {
            throw ValidationError("--workers takes counts in 1...1000, --steps at least 2")
        }
        print(try ScaleBenchmark.report(workers: counts, steps: steps, secure: secure, logger: makeLogger(.error)))
    }
}

struct NumericsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numerics",
        abstract: "How far Float32 meta-gradients land from Float64, per seed, and the ReLU/max-pool decisions that differ (run once per --matrix-library).")

    @Option(help: "First seed.") var firstSeed: UInt64 = 0
    @Option(help: "Seeds.") var seeds = 10
    @OptionGroup var input: InputSizeOptions
    @Option(help: "second, first or reptile.") var order: MetaOrder = .second
    @Option(help: "Inner steps (W1: 5).") var innerSteps = 5
    @OptionGroup var numerics: NumericsOptions

    func run() throws {
        try applyNumerics(numerics.settings())
        var config = MetaConfig(model: UNetConfig(height: input.size(), width: input.size()).spec)
        config.order = order
        config.innerSteps = innerSteps
        print(try NumericsBenchmark(config: config).report(seeds: (0..<UInt64(seeds)).map { firstSeed + $0 }))
    }
}
