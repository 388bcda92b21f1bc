import Core
import Datasets
import Foundation
import Testing

/// The task universe: deterministic, mutually exclusive tasks on shared images, whole rules
/// held out at every N, nested type sets, and rules that mean what they say.
@Suite struct UniverseTests {
    static func universe(_ types: Int?, augment: Bool = false, size: Int = 32) throws -> TaskUniverse {
        try TaskUniverse(size: size, options: .init(types: types, metaAugmentation: augment))
    }

    @Test func samplesAreAPureFunctionOfTaskIndexAndSeed() throws {
        let u = try Self.universe(10), v = try Self.universe(10)
        for task in [0, 5, u.taskNames.count - 1] {
            let a = try u.sample(task: task, index: 7, seed: 3, support: 2, query: 2)
            #expect(a == (try v.sample(task: task, index: 7, seed: 3, support: 2, query: 2)))
            #expect(a != (try u.sample(task: task, index: 8, seed: 3, support: 2, query: 2)))
            try a.validate()
        }
        #expect(u.identity == v.identity)
        #expect(u.identity != (try Self.universe(30)).identity)
        #expect(u.identity != (try Self.universe(10, augment: true)).identity)
    }

    /// The same image serves tasks with different targets: only the support set tells which.
    @Test func tasksShareImagesAndDisagreeOnTargets() throws {
        let u = try Self.universe(30)
        var shared = 0, differing = 0
        for index in UInt64(0)..<6 {
            let a = try u.sample(task: 0, index: index, seed: 1, support: 1, query: 1)
            let b = try u.sample(task: 1, index: index, seed: 1, support: 1, query: 1)
            if a.supportImages == b.supportImages {
                shared += 1
                if a.supportMasks != b.supportMasks { differing += 1 }
            }
        }
        #expect(shared >= 4 && differing == shared, "\(shared) shared, \(differing) of them with other targets")
    }

    @Test func heldOutRulesAreNeverTrainedOnAtAnyN() throws {
        for n in [3, 10, 100, nil] as [Int?] {
            let u = try Self.universe(n)
            let split = u.defaultSplit.partition(u.taskNames)
            let trainRules = Set(split.train.map { u.taskNames[$0].split(separator: "/")[2] })
            let heldOut = Set((split.validation + split.test).map { u.taskNames[$0].split(separator: "/")[2] })
            #expect(trainRules.isDisjoint(with: heldOut))
            #expect(Set(TaskRule.rules(.validation).map(\.rawValue)) == Set(split.validation.map { String(u.taskNames[$0].split(separator: "/")[2]) }))
            #expect(split.validation.count == 3 * TaskUniverse.heldOutPerRule && split.test.count == 3 * TaskUniverse.heldOutPerRule)
            #expect(split.train.count == (n ?? TaskRule.rules(.train).count))
        }
        // The held-out tasks are the same at every N.
        let a = try Self.universe(3), b = try Self.universe(1000)
        #expect(a.taskNames.filter { !$0.hasPrefix("universe/train/") } == b.taskNames.filter { !$0.hasPrefix("universe/train/") })
    }

    /// N types are the first N of one sequence: 10 types include the 3.
    @Test func typeSetsAreNestedAndDistinct() throws {
        let three = try Self.universe(3).taskNames.filter { $0.hasPrefix("universe/train/") }
        let ten = try Self.universe(10).taskNames.filter { $0.hasPrefix("universe/train/") }
        let thousand = try Self.universe(1000).taskNames.filter { $0.hasPrefix("universe/train/") }
        #expect(Array(ten.prefix(3)) == three)
        #expect(Array(thousand.prefix(10)) == ten)
        #expect(Set(thousand).count == 1000)
    }

    /// Unbounded: a training task draws fresh parameters for each sample.
    @Test func unboundedTasksDrawFreshTypes() throws {
        let u = try Self.universe(nil)
        #expect(u.taskNames.filter { $0.hasPrefix("universe/train/") }.allSatisfy { $0.hasSuffix("/*") })
        let types = Set((UInt64(0)..<20).map { u.type(task: 1, index: $0, seed: 2).description })
        #expect(types.count >= 10, "\(types)")
    }

    /// Meta-augmentation swaps foreground and background in some meta-train samples only.
    @Test func metaAugmentationFlipsMetaTrainSamplesOnly() throws {
        let plain = try Self.universe(10), augmented = try Self.universe(10, augment: true)
        var flipped = 0
        for index in UInt64(0)..<12 {
            let a = try plain.sample(task: 2, index: index, seed: 4, support: 1, query: 1)
            let b = try augmented.sample(task: 2, index: index, seed: 4, support: 1, query: 1)
            #expect(a.supportImages == b.supportImages)
            if a.supportMasks != b.supportMasks {
                flipped += 1
                #expect(zip(a.supportMasks, b.supportMasks).allSatisfy { $0 + $1 == 1 })
            }
        }
        #expect(flipped > 2 && flipped < 10, "\(flipped) of 12 flipped")
        let test = plain.taskNames.firstIndex { $0.hasPrefix("universe/test/") }!
        #expect(try plain.sample(task: test, index: 1, seed: 4, support: 1, query: 1) == augmented.sample(task: test, index: 1, seed: 4, support: 1, query: 1))
    }

    /// The rules on a drawn label map: a grown structure holds it, a shrunk one lies in it, a
    /// band is the structure minus its eroded core, a halo lies outside it, filling adds only.
    @Test func rulesMeanWhatTheySay() throws {
        var rng = RandomStream(seed: 11)
        for _ in 0..<6 {
            let anatomy = UniverseAnatomy(size: 32, rng: &rng)
            for c in anatomy.classes {
                let a = anatomy.mask(c)
                let dilated = TaskType(rule: .dilate, classes: [c], width: 2).target(anatomy)
                let eroded = TaskType(rule: .erode, classes: [c], width: 1).target(anatomy)
                let band = TaskType(rule: .band, classes: [c], width: 1).target(anatomy)
                let halo = TaskType(rule: .halo, classes: [c], width: 2).target(anatomy)
                let filled = TaskType(rule: .fill, classes: [c]).target(anatomy)
                for i in a.indices {
                    if a[i] { #expect(dilated[i] && filled[i] && !halo[i]) }
                    if eroded[i] { #expect(a[i] && !band[i]) }
                    if band[i] { #expect(a[i]) }
                    #expect(halo[i] == (dilated[i] && !a[i]))
                }
            }
        }
        // The label map is a partition: every pixel one class, 0 outside the body.
        let anatomy = UniverseAnatomy(size: 48, rng: &rng)
        #expect(anatomy.labels.allSatisfy { $0 <= UInt8(UniverseClass.allCases.count) })
    }

    @Test func morphologyOnSmallShapes() {
        // A 3x3 square with a hole in the middle, in a 7x7 image.
        var ring = [Bool](repeating: false, count: 49)
        for y in 2...4 { for x in 2...4 where !(y == 3 && x == 3) { ring[y * 7 + x] = true } }
        let filled = Morphology.fillHoles(ring, size: 7)
        #expect(filled[3 * 7 + 3] && filled.filter { $0 }.count == 9)
        #expect(Morphology.erode(filled, size: 7, radius: 1).filter { $0 }.count == 1)
        #expect(Morphology.dilate([Bool](repeating: false, count: 48) + [true], size: 7, radius: 1).filter { $0 }.count == 3)
        let (labels, sizes) = Morphology.components(ring + [], size: 7)
        #expect(sizes == [8] && labels.filter { $0 == 0 }.count == 8)
    }

    /// Label maps and images for multi-class training are the tasks' images.
    @Test func labelMapsComeWithTheTasksImages() throws {
        let u = try Self.universe(10)
        var same = 0
        for index in UInt64(0)..<8 {
            let (images, labels) = u.labelledImages(index: index, seed: 5, count: 2)
            #expect(images.count == 2 * 32 * 32 && labels.count == images.count)
            #expect(Set(labels).isSubset(of: Set(UInt8(0)...UInt8(u.classCount))))
            // A task's image is the label map's unless the task's target was empty on it.
            let sample = try u.sample(task: 0, index: index, seed: 5, support: 2, query: 0)
            if sample.supportImages == images { same += 1 }
        }
        #expect(same >= 5, "\(same) of 8 samples show the label maps' images")
        #expect(u.classCount == UniverseClass.allCases.count)
    }
}
