import Core
import Datasets
import Foundation
import Testing
import TestSupport

@Suite struct SyntheticFamilyTests {
    let family = SyntheticFamily(size: 32)

    @Test func tasksAndDefaultSplit() {
        #expect(family.taskNames.count == 20)
        #expect(family.taskNames.contains("synthetic/organ/ct"))
        let partition = family.defaultSplit.partition(family.taskNames)
        let (train, validation, test) = (partition.train, partition.validation, partition.test)
        // 5 structures x 4 styles: paired/* and */xray are meta-test (8), the ring on the
        // three other styles is meta-validation (3), the rest meta-train (9).
        #expect(train.count == 9 && validation.count == 3 && test.count == 8)
        #expect(Set(train).isDisjoint(with: validation) && Set(train).isDisjoint(with: test) && Set(validation).isDisjoint(with: test))
        let trainNames = train.map { family.taskNames[$0] }
        #expect(!trainNames.contains { $0.contains("/paired/") || $0.hasSuffix("/xray") || $0.contains("/ring/") })
        #expect(validation.allSatisfy { family.taskNames[$0].contains("/ring/") && !family.taskNames[$0].hasSuffix("/xray") })
    }

    @Test func multiStructureTasksShareImagesAndConflict() throws {
        let multi = SyntheticFamily(size: 32, variant: .multiStructure)
        #expect(multi.identity.name == "synthetic-multi" && multi.identity != family.identity)
        let partition = multi.defaultSplit.partition(multi.taskNames)
        // Meta-train never sees the validation (ring) or test (paired) structure as a target.
        #expect(partition.train.count == 12 && partition.validation.count == 4 && partition.test.count == 4)
        #expect(partition.train.allSatisfy { !multi.taskNames[$0].contains("/ring/") && !multi.taskNames[$0].contains("/paired/") })
        #expect(partition.test.allSatisfy { multi.taskNames[$0].contains("/paired/") })
        // Two structures in one style: the same images, different (and non-empty) masks.
        let organ = try #require(multi.taskNames.firstIndex(of: "synthetic-multi/organ/ct"))
        let lesion = try #require(multi.taskNames.firstIndex(of: "synthetic-multi/lesion/ct"))
        let a = try multi.sample(task: organ, index: 5, seed: 2, support: 3, query: 2)
        let b = try multi.sample(task: lesion, index: 5, seed: 2, support: 3, query: 2)
        try a.validate(); try b.validate()
        #expect(a.supportImages == b.supportImages && a.queryImages == b.queryImages)
        #expect(a.supportMasks != b.supportMasks)
        #expect(a.supportMasks.contains(1) && b.supportMasks.contains(1))
        // Another style draws other images for the same sample.
        let organMRI = try #require(multi.taskNames.firstIndex(of: "synthetic-multi/organ/mr"))
        let c = try multi.sample(task: organMRI, index: 5, seed: 2, support: 3, query: 2)
        #expect(c.supportImages != a.supportImages)
    }

    @Test func samplesAreValidAndNonEmpty() throws {
        for task in family.taskNames.indices {
            let s = try family.sample(task: task, index: 3, seed: 1, support: 5, query: 5)
            try s.validate()
            for b in 0..<5 {
                #expect(s.supportMasks[(b * 1024)..<((b + 1) * 1024)].contains(1), "empty mask in \(family.taskNames[task])")
            }
            let mean = s.supportImages.reduce(0, +) / Float(s.supportImages.count)
            #expect(abs(mean) < 1e-3)
        }
    }

    @Test func samplingIsDeterministicAcrossCallsAndThreads() throws {
        let reference = try family.sample(task: 7, index: 42, seed: 9, support: 3, query: 2)
        let results = ThreadSafeBox<[TaskSample]>([])
        let group = DispatchGroup()
        let family = self.family
        for _ in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                if let s = try? family.sample(task: 7, index: 42, seed: 9, support: 3, query: 2) { results.mutate { $0.append(s) } }
            }
        }
        group.wait()
        #expect(results.value.count == 4)
        #expect(results.value.allSatisfy { $0 == reference })
        #expect(try family.sample(task: 7, index: 43, seed: 9, support: 3, query: 2) != reference)
        #expect(try family.sample(task: 7, index: 42, seed: 10, support: 3, query: 2) != reference)
    }

    /// Images within a task vary: masks of different samples overlap far from completely.
    @Test func variationWithinATask() throws {
        let s = try family.sample(task: 0, index: 0, seed: 0, support: 8, query: 0)
        var dice: [Float] = []
        for a in 0..<8 {
            for b in (a + 1)..<8 {
                let ma = s.supportMasks[(a * 1024)..<((a + 1) * 1024)], mb = s.supportMasks[(b * 1024)..<((b + 1) * 1024)]
                let inter = zip(ma, mb).reduce(0) { $0 + $1.0 * $1.1 }
                dice.append(2 * inter / (ma.reduce(0, +) + mb.reduce(0, +)))
            }
        }
        #expect(dice.reduce(0, +) / Float(dice.count) < 0.6)
    }

    @Test func badRequestsAreErrors() {
        #expect(throws: DataError.self) { try family.sample(task: 99, index: 0, seed: 0, support: 1, query: 1) }
        #expect(throws: DataError.self) { try family.sample(task: 0, index: 0, seed: 0, support: 0, query: 1) }
    }

    @Test func globs() {
        #expect(TaskSplit.matches("synthetic/*/xray", "synthetic/organ/xray"))
        #expect(!TaskSplit.matches("synthetic/*/xray", "synthetic/organ/ct"))
        #expect(TaskSplit.matches("Task0?_*", "Task09_Spleen"))
        #expect(TaskSplit.matches("*", ""))
    }

    /// Two readers of one sample stream on two threads, as a study's joint trainings run:
    /// each gets the bits the family renders, every sample is rendered once, and nothing
    /// outlives its last reader. With no room to keep anything each reader renders its own.
    @Test(arguments: [256 << 20, 0])
    func sharedSamplesRenderOnceForTwoReaders(byteLimit: Int) throws {
        let family = SyntheticFamily(size: 16)
        let shared = SharedSamples(family, readers: 2, byteLimit: byteLimit)
        let refs = (0..<40).map { TaskRef(task: $0 % family.taskNames.count, index: UInt64($0) &* 0x9E37_79B9) }
        let results = Locked([[Result<TaskSample, DataError>]](repeating: [], count: 2))
        DispatchQueue.concurrentPerform(iterations: 2) { reader in
            let got = refs.map { ref in Result { () throws(DataError) in try shared.sample(task: ref.task, index: ref.index, seed: 3, support: 2, query: 1) } }
            results.withLock { $0[reader] = got }
        }
        let expected = try refs.map { try family.sample(task: $0.task, index: $0.index, seed: 3, support: 2, query: 1) }
        let got = try results.withLock { $0 }.map { try $0.map { try $0.get() } }
        #expect(got[0] == expected && got[1] == expected)
        let counts = shared.statistics
        #expect(counts.rendered + counts.shared == 2 * refs.count)
        // A reader never renders what the other is rendering: it waits and takes it.
        #expect(counts.rendered == (byteLimit == 0 ? 2 : 1) * refs.count)
        // Every sample has had both reads: none is kept.
        let (rendered, _) = counts
        _ = try shared.sample(task: refs[0].task, index: refs[0].index, seed: 3, support: 2, query: 1)
        #expect(shared.statistics.rendered == rendered + 1)
    }

    /// Meta-batches through `samples`, as joint training asks for them: two readers in step
    /// split the rendering of each batch between them, and still get the family's bits.
    @Test func sharedMetaBatchesSplitTheRendering() throws {
        let family = SyntheticFamily(size: 16)
        let shared = SharedSamples(family, readers: 2)
        let batches = (0..<10).map { b in (0..<4).map { TaskRef(task: (b * 4 + $0) % 7, index: UInt64(b * 4 + $0) &* 0x5851_F42D) } }
        let results = Locked([[Result<[TaskSample], DataError>]](repeating: [], count: 2))
        DispatchQueue.concurrentPerform(iterations: 2) { reader in
            let got = batches.map { batch in Result { () throws(DataError) in try shared.samples(batch, seed: 5, support: 3, query: 2) } }
            results.withLock { $0[reader] = got }
        }
        let expected = try batches.map { try family.samples($0, seed: 5, support: 3, query: 2) }
        for reader in 0..<2 {
            #expect(try results.withLock { $0[reader] }.map { try $0.get() } == expected)
        }
        #expect(shared.statistics.rendered == 40 && shared.statistics.shared == 40)
    }

    /// Union tasks: every two meta-train structures of one style, united on the same images;
    /// the held-out structures are never part of one.
    @Test func unionTasksUniteMetaTrainStructuresOnSharedImages() throws {
        let multi = SyntheticFamily(size: 32, variant: .multiStructure)
        let union = try UnionAugmentedSource(base: multi, split: multi.defaultSplit)
        // Three meta-train structures (organ, vessel, lesion) give three pairs in each of the four styles.
        #expect(union.unionNames.count == 12 && union.taskNames == multi.taskNames + union.unionNames)
        #expect(union.unionNames.allSatisfy { $0.hasPrefix("union/synthetic-multi/") && !$0.contains("/ring/") && !$0.contains("/paired/") })
        #expect(union.pairs.allSatisfy { multi.kind(of: $0.0).1 == multi.kind(of: $0.1).1 && $0.0 != $0.1 })
        let partition = multi.defaultSplit.partition(union.taskNames)
        #expect(partition.train.count == 24 && partition.validation.count == 4 && partition.test.count == 4)
        let again = try UnionAugmentedSource(base: multi, split: multi.defaultSplit)
        #expect(union.identity != multi.identity && union.identity == again.identity)

        for (offset, (a, b)) in union.pairs.enumerated() {
            let united = try union.sample(task: multi.taskNames.count + offset, index: 3, seed: 9, support: 2, query: 1)
            let first = try multi.sample(task: a, index: 3, seed: 9, support: 2, query: 1)
            let second = try multi.sample(task: b, index: 3, seed: 9, support: 2, query: 1)
            #expect(united.supportImages == first.supportImages && united.queryImages == first.queryImages)
            #expect(united.supportMasks == zip(first.supportMasks, second.supportMasks).map { max($0, $1) })
            #expect(united.queryMasks == zip(first.queryMasks, second.queryMasks).map { max($0, $1) })
            // Both structures are present, so the union is larger than either.
            #expect(united.supportMasks.reduce(0, +) > max(first.supportMasks.reduce(0, +), second.supportMasks.reduce(0, +)))
        }
        #expect(try union.sample(task: 0, index: 3, seed: 9, support: 2, query: 1) == multi.sample(task: 0, index: 3, seed: 9, support: 2, query: 1))
        #expect(throws: DataError.self) { try union.sample(task: union.taskNames.count, index: 0, seed: 0, support: 1, query: 0) }
        #expect(throws: DataError.self) { try union.sample(task: -1, index: 0, seed: 0, support: 1, query: 0) }
    }

    /// Tasks on different images have nothing to unite; tasks whose images agree on the
    /// grouping sample but not on a later one give an error, never a mask on the wrong image.
    @Test func unionTasksNeedSharedImages() throws {
        let error = try #require(throws: DataError.self) { try UnionAugmentedSource(base: family, split: family.defaultSplit) }
        #expect("\(error)".contains("no two meta-train tasks label the same images"), "\(error)")

        struct SharedOnlyAtFirst: TaskSource {
            let base = SyntheticFamily(size: 16, variant: .multiStructure)
            var identity: DatasetIdentity { base.identity }
            var imageShape: FeatureShape { base.imageShape }
            var taskNames: [String] { base.taskNames }
            var defaultSplit: TaskSplit { base.defaultSplit }
            func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample {
                // Sample 0 is one scene per style, as in the family; later ones depend on the structure too.
                let structure = UInt64(task / base.styles.count)
                return try base.sample(task: task, index: index == 0 ? 0 : index + (structure % 2) * 1000, seed: seed, support: support, query: query)
            }
        }
        let mismatched = try UnionAugmentedSource(base: SharedOnlyAtFirst(), split: SharedOnlyAtFirst().defaultSplit)
        let styles = SyntheticStyle.allCases.count
        let first = try #require(mismatched.pairs.firstIndex { ($0.0 / styles) % 2 != ($0.1 / styles) % 2 })
        let task = mismatched.base.taskNames.count + first
        _ = try mismatched.sample(task: task, index: 0, seed: 1, support: 1, query: 0)
        let refused = try #require(throws: DataError.self) { try mismatched.sample(task: task, index: 5, seed: 1, support: 1, query: 1) }
        #expect("\(refused)".contains("images differ in sample 5"), "\(refused)")
    }
}
