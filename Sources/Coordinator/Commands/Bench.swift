import ArgumentParser
import Benchmarks
import CommandOptions
import Datasets
import Engine
import Foundation
import MetaLearning

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that report numbers (release builds only).",
        subcommands: [EngineBench.self, MAMLBench.self, DataBench.self, ScaleBench.self, NumericsBench.self])
}

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "W1 forward, forward+backward and Hessian-vector product (recomputed and replayed), single-threaded.")

    @Option(help: "Images per batch.") var batch = 5
    @Option(help: "Image side in pixels (W1: 64; the demo's model: 32).") var imageSize = 64
    @Option(help: "Channels of the U-Net's first level (W1: 16; the demo's model: 8).") var baseChannels = 16
    @Option(help: "Timed repetitions (the median is reported).") var repetitions = 20
    @Flag(help: "Time every layer and matrix product: where each pass's time goes, and the share outside matrix products.")
    var profile = false

    func validate() throws {
        guard batch >= 1, repetitions >= 1 else { throw ValidationError("--batch and --repetitions must be positive") }
        // The data options' rule; the model's own validation judges --base-channels.
        try InputSizeOptions.check(imageSize)
    }

    func run() throws {
        let config = UNetConfig(height: imageSize, width: imageSize, baseChannels: baseChannels)
        let bench = EngineBenchmark(config: config, batch: batch, repetitions: repetitions)
        if profile {
            print(try bench.profile())
            return
        }
        let results = try bench.run()
        let model = config == .w1 ? "W1 (unet-w1)" : "U-Net \(baseChannels) base channels"
        print("# \(model), \(batch) images \(imageSize)x\(imageSize), 1 thread, \(BLAS.kernelDescription)")
        for r in results {
            let label = r.name.padding(toLength: 34, withPad: " ", startingAt: 0)
            print(label + String(format: " %9.2f ms %8.1f GFLOP/s", r.milliseconds, r.gflops))
        }
        guard results.count == 4 else { return }
        let fb = results[1].milliseconds
        print(String(format: "hvp_over_forward_backward %.3f", results[2].milliseconds / fb))
        print(String(format: "hvp_replayed_over_forward_backward %.3f", results[3].milliseconds / fb))
    }
}

struct MAMLBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maml",
        abstract: "W1 meta-gradient throughput on task threads in one process; last line: tasks_per_second.")

    @Option(help: "second, first or reptile.") var order: MetaOrder = .second
    @Option(help: "Task threads.") var threads = 2
    @Option(help: "Timed tasks.") var tasks = 16
    @Flag(help: "ANIL: the inner loop adapts only the output head.") var headOnlyInnerLoop = false
    @Flag(help: "Proto-MAML: each task starts from its support set's prototype head.") var prototypeHead = false

    func run() throws {
        guard threads >= 1, tasks >= 1 else { throw ValidationError("--threads and --tasks must be positive") }
        print("# W1 meta-gradients, order \(order.rawValue)\(headOnlyInnerLoop ? ", head-only inner loop (ANIL)" : "")"
              + "\(prototypeHead ? ", prototype head" : ""), \(threads) thread(s), 1 process, \(BLAS.kernelDescription)")
        let rate = try MAMLBenchmark(order: order, threads: threads, tasks: tasks, headOnlyInnerLoop: headOnlyInnerLoop,
                                     prototypeHead: prototypeHead).run()
        print(String(format: "tasks_per_second %.4f", rate))
    }
}

struct DataBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Synthetic image generation cost against one W1 forward pass, per image.")

    @Option(help: "Images to generate per task.") var images = 40

    func run() throws {
        let family = SyntheticFamily(size: 64)
        var perTask: [(String, Double)] = []
        for task in family.taskNames.indices {
            let ms = EngineBenchmark.median(repetitions: 3, warmup: 1) {
                for i in 0..<images { _ = family.render(task: task, index: 0, seed: UInt64(i), image: i) }
            } / Double(images)
            perTask.append((family.taskNames[task], ms))
        }
        let forward = try EngineBenchmark(batch: 5, repetitions: 10).run()[0].milliseconds / 5
        for (name, ms) in perTask { print(name.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: "%7.3f ms/image", ms)) }
        let mean = perTask.map(\.1).reduce(0, +) / Double(perTask.count)
        print(String(format: "w1_forward_ms_per_image %.3f", forward))
        print(String(format: "generation_over_forward %.3f", mean / forward))
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
        print("# coordinator per-step cost, W1 parameters, one task per simulated worker, \(secure ? "CURVE" : "plaintext")")
        let logger = makeLogger(.error)
        for n in counts {
            let r = try ScaleBenchmark(workers: n, steps: steps, secure: secure, logger: logger).run()
            print(String(format: "workers %4d  seconds_per_step %.4f  per_worker_ms %.2f  MB_per_step %.1f", n, r.secondsPerStep,
                         1000 * r.secondsPerStep / Double(n), r.megabytesPerStep))
        }
    }
}

struct NumericsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numerics",
        abstract: "How far Float32 W1 meta-gradients land from Float64, per seed, and the ReLU/max-pool decisions that differ (run once per MEDMAML_GEMM).")

    @Option(help: "First seed.") var firstSeed: UInt64 = 0
    @Option(help: "Seeds.") var seeds = 10
    @Option(help: "Image size (W1: 64).") var imageSize = 64
    @Option(help: "second, first or reptile.") var order: MetaOrder = .second
    @Option(help: "Inner steps (W1: 5).") var innerSteps = 5

    func run() throws {
        var config = MetaConfig(model: UNetConfig(height: imageSize, width: imageSize).spec)
        config.order = order
        config.innerSteps = innerSteps
        print("# \(BLAS.kernelDescription): Float32 against Float64 (OpenBLAS dgemm), W1 \(order.rawValue)-order meta-gradient, \(innerSteps) inner steps")
        print("seed  gradient_distance  conv_output_error  relu_flips  pool_flips")
        for r in try NumericsBenchmark(config: config).run(seeds: (0..<UInt64(seeds)).map { firstSeed + $0 }) {
            print(String(format: "%4d  %17.3e  %17.3e  %10d  %10d", r.seed, r.gradientDistance, r.convolutionError, r.reluFlips, r.poolFlips))
        }
    }
}
