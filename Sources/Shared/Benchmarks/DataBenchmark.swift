import Core
import Datasets
import Engine
import Foundation
import MetaLearning

/// Whether data generation can keep up with training: the synthetic family's images against
/// one W1 forward pass, and the task universe's samples per second against the meta-gradients
/// per second of the regime map's most-run configuration, both on one thread.
public struct DataBenchmark {
    /// Images per synthetic task, samples per universe measurement.
    public var images: Int

    public init(images: Int = 40) {
        self.images = images
    }

    /// The synthetic family: milliseconds per image, per task, and the ratio to a forward pass.
    public func synthetic() throws -> String {
        let family = SyntheticFamily(size: 64)
        var lines: [String] = [], total = 0.0
        for task in family.taskNames.indices {
            let ms = EngineBenchmark.median(repetitions: 3, warmup: 1) {
                for i in 0..<images { _ = family.render(task: task, index: 0, seed: UInt64(i), image: i) }
            } / Double(images)
            total += ms
            lines.append(family.taskNames[task].padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: "%7.3f ms/image", ms))
        }
        let forward = try EngineBenchmark(batch: 5, repetitions: 10).run()[0].milliseconds / 5
        lines.append(String(format: "w1_forward_ms_per_image %.3f", forward))
        lines.append(String(format: "generation_over_forward %.3f", total / Double(family.taskNames.count) / forward))
        return lines.joined(separator: "\n")
    }

    /// The universe at `size` pixels, with fresh task types per sample (unbounded N) and with
    /// 30 types: meta-train samples (K = Q = 5) per second on one thread, against the map's
    /// most-run recipe (Proto-ANIL with meta-augmentation at 32 px, generation included) in
    /// meta-gradients per second on one thread.
    public func universe(size: Int = 32) throws -> String {
        var lines: [String] = []
        for types in [nil, 30] as [Int?] {
            let universe = try TaskUniverse(size: size, options: .init(types: types, metaAugmentation: true))
            let train = universe.defaultSplit.partition(universe.taskNames).train
            let count = max(images, 1)
            let ms = EngineBenchmark.median(repetitions: 3, warmup: 1) {
                for i in 0..<count { _ = try? universe.sample(task: train[i % train.count], index: UInt64(i), seed: 1, support: 5, query: 5) }
            } / Double(count)
            let name = types.map { "n\($0)" } ?? "unbounded"
            lines.append(String(format: "universe_\(name)_samples_per_second %.1f", 1000 / ms))
        }
        let config = MAMLBenchmark.workload(imageSize: size, baseChannels: 8, order: .second, headOnlyInnerLoop: true, prototypeHead: true)
        let training = try MAMLBenchmark(config: config, dataset: "universe", threads: 1, tasks: 40).run()
        lines.append(String(format: "map_training_tasks_per_second %.1f", training))
        return lines.joined(separator: "\n")
    }
}
