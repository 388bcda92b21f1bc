import ArgumentParser
import Foundation
import Shared

@main
struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmaml-coordinator",
        abstract: "MedMAML: distributed few-shot medical image segmentation by meta-learning.",
        subcommands: [Datasets.self, Bench.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that report numbers (release builds only).",
        subcommands: [EngineBench.self])
}

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "W1 forward, forward+backward and Hessian-vector product, single-threaded.")

    @Option(help: "Images per batch.") var batch = 5
    @Option(help: "Timed repetitions (the median is reported).") var repetitions = 20

    func run() throws {
        let results = try EngineBenchmark(batch: batch, repetitions: repetitions).run()
        print("# W1 (unet-w1), \(batch) images 64x64, 1 thread, \(BLAS.kernelDescription)")
        for r in results {
            let label = r.name.padding(toLength: 24, withPad: " ", startingAt: 0)
            print(label + String(format: " %9.2f ms %8.1f GFLOP/s", r.milliseconds, r.gflops))
        }
        let fb = results[1].milliseconds, hv = results[2].milliseconds
        print(String(format: "hvp_over_forward_backward %.3f", hv / fb))
    }
}
