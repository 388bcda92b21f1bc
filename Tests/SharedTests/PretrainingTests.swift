import Core
import Datasets
import Engine
import Evaluation
import Foundation
import MetaLearning
import Pretraining
import Testing
import TestSupport

@Suite struct PretrainingTests {
    static let family = SyntheticFamily(size: 32)

    @Test func superpixelsAreDeterministicAndCoverTheImage() throws {
        let image = Self.family.render(task: 2, index: 5, seed: 1, image: 0).image
        let a = Superpixels(image: image, height: 32, width: 32, target: 30)
        let b = Superpixels(image: image, height: 32, width: 32, target: 30)
        #expect(a == b)
        #expect(a.labels.count == 32 * 32)
        #expect(a.labels.allSatisfy { $0 >= 0 && Int($0) < a.count })
        #expect(Set(a.labels).count == a.count, "labels are not contiguous")
        #expect((10...60).contains(a.count), "\(a.count) superpixels for a target of 30")
        // Each superpixel is one 4-connected region.
        for label in 0..<a.count {
            let members = a.labels.indices.filter { a.labels[$0] == Int32(label) }
            var seen: Set<Int> = [members[0]], stack = [members[0]]
            while let i = stack.popLast() {
                let y = i / 32, x = i % 32
                for j in [y > 0 ? i - 32 : -1, y < 31 ? i + 32 : -1, x > 0 ? i - 1 : -1, x < 31 ? i + 1 : -1]
                where j >= 0 && a.labels[j] == Int32(label) && !seen.contains(j) {
                    seen.insert(j)
                    stack.append(j)
                }
            }
            #expect(seen.count == members.count, "superpixel \(label) is not connected")
        }
    }

    @Test func superpixelsFollowEdges() {
        // Two flat halves: no superpixel should straddle the boundary.
        let image = (0..<(32 * 32)).map { Float(($0 % 32) < 16 ? 0 : 5) }
        let sp = Superpixels(image: image, height: 32, width: 32, target: 16)
        for label in 0..<sp.count {
            let columns = sp.labels.indices.filter { sp.labels[$0] == Int32(label) }.map { $0 % 32 }
            #expect(columns.allSatisfy { $0 < 16 } || columns.allSatisfy { $0 >= 16 })
        }
    }

    @Test func pseudoTasksAreValidBinaryTasksWithNonEmptyMasks() throws {
        let source = PseudoTaskSource(images: SyntheticUnlabelled(size: 32))
        #expect(source.taskNames == ["pseudo/synthetic/ct", "pseudo/synthetic/mr", "pseudo/synthetic/ultrasound", "pseudo/synthetic/xray"])
        for task in source.taskNames.indices {
            for index in 0..<3 {
                let s = try source.sample(task: task, index: UInt64(index), seed: 4, support: 5, query: 5)
                try s.validate()
                for b in 0..<10 {
                    let m = (s.supportMasks + s.queryMasks)[(b * 1024)..<((b + 1) * 1024)]
                    let area = m.reduce(0, +) / 1024
                    #expect(area > 0 && area < 0.5, "pseudo-mask area \(area)")
                }
                #expect(s == (try source.sample(task: task, index: UInt64(index), seed: 4, support: 5, query: 5)))
            }
        }
    }

    @Test func pseudoTasksFromFiles() throws {
        var options = VolumeOptions()
        options.size = 32
        let volumes = try FileUnlabelled(root: fixturePath("decathlon/Task99_Mini"), options: options, includeTraining: true,
                                         logger: .init(label: "test"))
        #expect(volumes.groups.count == 3)
        let pngs = try FileUnlabelled(root: fixturePath("pngtasks"), options: options, includeTraining: false, logger: .init(label: "test"))
        #expect(pngs.groups == ["discs16", "discs8"])
        let s = try PseudoTaskSource(images: volumes).sample(task: 0, index: 0, seed: 0, support: 2, query: 1)
        try s.validate()
        // A Decathlon folder without imagesTs needs the training images.
        #expect(throws: DataError.self) {
            try FileUnlabelled(root: fixturePath("decathlon/Task99_Mini"), options: options, includeTraining: false, logger: .init(label: "test"))
        }
    }

    /// Task augmentation: one pseudo-task per meta-train task, on that task's images only;
    /// the labelled tasks unchanged, bit for bit.
    @Test func pseudoTasksBesideTheLabelledTasks() throws {
        let split = Self.family.defaultSplit
        let augmented = PseudoAugmentedSource(base: Self.family, split: split, options: PseudoTaskOptions())
        let train = split.partition(Self.family.taskNames).train
        #expect(train.count == 9)
        #expect(augmented.taskNames == Self.family.taskNames + train.map { "pseudo/" + Self.family.taskNames[$0] })
        // No pseudo-task reads a meta-validation or meta-test task's images (ring, paired, x-ray).
        for name in augmented.taskNames.dropFirst(Self.family.taskNames.count) {
            #expect(!name.contains("ring") && !name.contains("paired") && !name.contains("xray"), "\(name)")
            #expect(split.role(of: name) == .train, "\(name)")
        }
        for task in Self.family.taskNames.indices {
            #expect(try augmented.sample(task: task, index: 3, seed: 9, support: 2, query: 1)
                    == Self.family.sample(task: task, index: 3, seed: 9, support: 2, query: 1))
        }
        let images = TaskImages(base: Self.family, tasks: train)
        for (k, task) in train.enumerated() {
            let n = Self.family.taskNames.count + k
            let s = try augmented.sample(task: n, index: 7, seed: 9, support: 3, query: 2)
            try s.validate()
            #expect(s == (try augmented.sample(task: n, index: 7, seed: 9, support: 3, query: 2)))
            #expect(s != (try augmented.sample(task: n, index: 8, seed: 9, support: 3, query: 2)))
            #expect(Set(s.supportMasks + s.queryMasks).isSubset(of: [0, 1]) && s.supportMasks.contains(1))
            // The unlabelled images are the task's own samples, without their masks.
            #expect(try images.image(group: k, index: 4)
                    == Self.family.sample(task: task, index: 4, seed: TaskImages.seed, support: 1, query: 0).supportImages)
        }
        #expect(throws: DataError.self) { try augmented.sample(task: augmented.taskNames.count, index: 0, seed: 0, support: 1, query: 1) }
        #expect(throws: DataError.self) { try augmented.sample(task: -1, index: 0, seed: 0, support: 1, query: 1) }
        // The identity names the split: a worker with another split opens other tasks.
        let other = PseudoAugmentedSource(base: Self.family, split: TaskSplit(testPatterns: ["synthetic/paired/*"]), options: PseudoTaskOptions())
        #expect(other.identity != augmented.identity && augmented.identity != Self.family.identity)
        #expect(augmented.identity == PseudoAugmentedSource(base: Self.family, split: split, options: PseudoTaskOptions()).identity)
    }

    // MARK: Masked-image reconstruction

    @Test func maskedReconstructionSamplesAreDeterministicWithTargetsScaledToTheUnitRange() throws {
        let source = try MaskedReconstructionSource(images: SyntheticUnlabelled(size: 32))
        #expect(source.taskNames == ["masked/synthetic/ct", "masked/synthetic/mr", "masked/synthetic/ultrasound", "masked/synthetic/xray"])
        #expect(source.patch == 4)
        let s = try source.sample(task: 1, index: 3, seed: 4, support: 2, query: 3)
        #expect(s.supportImages.count == 2 * 1024 && s.supportMasks.count == 2 * 1024)
        #expect(s.queryImages.count == 3 * 1024 && s.queryMasks.count == 3 * 1024)
        for b in 0..<5 {
            let target = (s.supportMasks + s.queryMasks)[(b * 1024)..<((b + 1) * 1024)]
            #expect(target.min() == 0 && target.max() == 1, "image \(b): the target spans [0, 1]")
            let input = (s.supportImages + s.queryImages)[(b * 1024)..<((b + 1) * 1024)]
            #expect(input.allSatisfy { $0.isFinite })
        }
        #expect(s == (try source.sample(task: 1, index: 3, seed: 4, support: 2, query: 3)))
        #expect(s != (try source.sample(task: 1, index: 4, seed: 4, support: 2, query: 3)))
        #expect(s != (try source.sample(task: 1, index: 3, seed: 5, support: 2, query: 3)))
        #expect(throws: DataError.self) { try source.sample(task: 4, index: 0, seed: 0, support: 1, query: 1) }
    }

    /// Without noise, the input is the clean view with exactly the masked share of the patch
    /// grid set to zero (the z-scored mean), and the target is the clean view rescaled.
    @Test func corruptionBlanksTheMaskedShareOfPatchesAndTheTargetIsTheCleanView() throws {
        var options = MaskedReconstructionSource.Options()
        options.noise = 0
        let source = try MaskedReconstructionSource(images: SyntheticUnlabelled(size: 32), options: options)
        var rng = RandomStream(seed: 9)
        let view = (0..<1024).map { Float($0 % 97) / 10 + 0.05 }  // no pixel is zero
        let (input, target) = source.corrupt(view, rng: &rng)
        var blanked = 0
        for cy in 0..<8 {
            for cx in 0..<8 {
                let pixels = (0..<16).map { (cy * 4 + $0 / 4) * 32 + cx * 4 + $0 % 4 }
                if pixels.allSatisfy({ input[$0] == 0 }) {
                    blanked += 1
                } else {
                    #expect(pixels.allSatisfy { input[$0] == view[$0] }, "cell \(cy),\(cx) is partly blanked")
                }
            }
        }
        #expect(blanked == 32)
        let lo = view.min()!, span = view.max()! - lo
        #expect(target == view.map { ($0 - lo) / span })
    }

    @Test func maskedReconstructionRejectsWhatItCannotServe() throws {
        var options = MaskedReconstructionSource.Options()
        options.maskedFraction = 1.5
        #expect(throws: DataError.self) { try MaskedReconstructionSource(images: SyntheticUnlabelled(size: 32), options: options) }
        options = MaskedReconstructionSource.Options()
        options.noise = .nan
        #expect(throws: DataError.self) { try MaskedReconstructionSource(images: SyntheticUnlabelled(size: 32), options: options) }
    }

    /// The pretext is learnable with the segmentation loss: joint training on it brings the
    /// network's reconstruction of held-out views (blanked patches included) far closer to the
    /// targets than the untrained network's.
    @Test func jointTrainingOnTheReconstructionPretextLearnsToReconstruct() throws {
        let source = try MaskedReconstructionSource(images: SyntheticUnlabelled(size: 16))
        var config = TrainingConfig()
        config.meta = MetaConfig(model: UNetConfig(height: 16, width: 16, depth: 2, baseChannels: 4, groups: 2).spec)
        config.metaBatch = 2
        config.seed = 3
        let tasks = Array(source.taskNames.indices)
        let initial = try MetaLayout(config: config.meta).model.initialValues(seed: 1)
        let joint = JointTraining(config: config, source: source, trainTasks: tasks,
                                  settings: .init(heads: .shared, learningRate: 3e-3, steps: 150))
        let trained = try joint.train(initial: initial).parameters
        let network = try Network<Float>(spec: config.meta.model, capacity: 5)
        func error(_ parameters: [Float]) throws -> Double {
            var total = 0.0, count = 0
            for task in tasks {
                let s = try source.sample(task: task, index: 1 << 30, seed: 99, support: 5, query: 0)
                let z = network.forward(parameters: parameters, images: s.supportImages, batch: 5)
                for i in s.supportMasks.indices {
                    total += Double(abs(1 / (1 + Float.exp(-z[i])) - s.supportMasks[i]))
                    count += 1
                }
            }
            return total / Double(count)
        }
        let before = try error(initial), after = try error(trained)
        #expect(after < 0.5 * before, "mean absolute reconstruction error \(before) -> \(after)")
    }
}
