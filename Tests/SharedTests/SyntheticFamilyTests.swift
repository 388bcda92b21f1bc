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
        let (train, test) = (partition.train, partition.test)
        #expect(train.count == 12 && test.count == 8)
        let trainNames = train.map { family.taskNames[$0] }
        #expect(!trainNames.contains { $0.contains("/paired/") || $0.hasSuffix("/xray") })
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
}
