import Core
import Evaluation
import Foundation
import Engine
import MetaLearning
import Study
import Testing

/// The study's plan, choice rule and snapshot schedule, without the binary.
@Suite struct StudyPlanTests {
    @Test func everyCandidateOfAPlanGetsTheSameNumberOfSettingsAndAUniqueName() {
        for plan in [StudyPlan.standard(pretraining: true, unionTasks: true), StudyPlan.standard(pretraining: false)] {
            let names = plan.candidates.map(\.name)
            #expect(Set(names).count == names.count)
            #expect(Set(plan.candidates.map(\.grid.count)) == [9])
            #expect(Set(plan.candidates.map(\.family)).isSuperset(of: Family.main))
        }
        let full = StudyPlan.standard(pretraining: true, unionTasks: true)
        let partial = StudyPlan.standard(pretraining: false, unionTasks: false)
        #expect(full.candidates.filter { $0.family == .pretrainedMAML }.count == 2)
        #expect(partial.candidates.filter { $0.family == .pretrainedMAML }.isEmpty)
        #expect(full.candidates.contains { $0.name == "maml++-second+union" } && !partial.candidates.contains { $0.name == "maml++-second+union" })
    }

    /// A recipe that meta-trains with k inner steps starts its grid with its own inner loop.
    @Test func aMAMLGridStartsWithTheRecipesOwnInnerLoop() {
        #expect(StudyPlan.mamlGrid(trainedSteps: 10).first == .inner(steps: 10, rateScale: 1))
        #expect(StudyPlan.mamlGrid.first == .inner(steps: 5, rateScale: 1))
        #expect(StudyPlan.mamlGrid.filter { if case .fineTune = $0 { true } else { false } }.count == 6)
    }

    /// A map continues with more task-type counts or seeds (each cell is measured on its own),
    /// but not with settings that change what a cell measures.
    @Test func aMapContinuesWithMoreCellsButNotWithOtherSettings() throws {
        var base = TrainingConfig()
        base.meta = MetaConfig(model: UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8).spec)
        let p = StudyProtocol(budget: 100, fractions: [1], shots: [1, 5], mainShots: 5, validationPerTask: 3, testPerTask: 10, costs: nil)
        let first = try Demo.settings(out: "/tmp/map", base: base, protocol: p, typeCounts: [3, 10])
        var more = first
        more.typeCounts = [3, 10, 30, nil]
        more.seeds = [0, 1, 2]
        // The map command's default budget cells follow the first and last N, so they change
        // with --task-types; which cells get a budget curve changes no cell's results.
        more.budgetCurveCells = [RegimeMap.Cell(types: 3, seed: 0), RegimeMap.Cell(types: nil, seed: 0)]
        #expect(RegimeMapState.Fingerprint(more) == RegimeMapState.Fingerprint(first))
        var other = first
        other.budget = 200
        #expect(RegimeMapState.Fingerprint(other) != RegimeMapState.Fingerprint(first))
        other = first
        other.steps = [0, 5]
        #expect(RegimeMapState.Fingerprint(other) != RegimeMapState.Fingerprint(first))
    }

    /// The demo's map: one candidate per family (the map's recipe, multi-class transfer,
    /// scratch), every candidate with the same number of adaptation settings, fixed step costs
    /// for its model, and one cell per asked type count at the demo's seed.
    @Test func theDemoComparesOneCandidatePerFamilyWithEqualGrids() throws {
        var base = TrainingConfig()
        base.meta = MetaConfig(model: UNetConfig(height: 32, width: 32, depth: 2, baseChannels: 8).spec)
        base.metaBatch = 4
        base.seed = 7
        let p = StudyProtocol(budget: 100, fractions: [1], shots: [1, 5], mainShots: 5, validationPerTask: 3, testPerTask: 10, costs: nil)
        let settings = try Demo.settings(out: "demo", base: base, protocol: p)
        #expect(settings.plan.candidates.map(\.family) == [.maml, .transferMultiClass, .scratch])
        #expect(Set(settings.plan.candidates.map(\.grid.count)) == [6])
        #expect(settings.costs == Demo.referenceCosts)
        #expect(settings.typeCounts == [nil] && settings.seeds == [7])
        base.meta = MetaConfig(model: UNetConfig(height: 64, width: 64, depth: 2, baseChannels: 8).spec)
        #expect(try Demo.settings(out: "demo", base: base, protocol: p).costs == nil, "another model's costs are measured")
    }

    /// Plans saved by earlier versions, with family and warm start as strings, read back.
    @Test func aPlanRoundTripsThroughTheStateFileFormat() throws {
        let plan = StudyPlan.standard(pretraining: true, unionTasks: true)
        let data = try JSONFile.encode(plan)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"family\" : \"transfer-heads\"") && text.contains("\"warmStart\" : \"pretrain-masked\""))
        #expect(try canonicalDecoder().decode(StudyPlan.self, from: data) == plan)
    }

    @Test func theBestSettingIsTheFirstLargestCellOfTheTable() {
        #expect(StudyChoice.firstBest([0.1, 0.3, 0.3, 0.2]) == 1)
        let dice: [[Double]] = [[0.1, 0.2, 0.4], [0.4, 0.3, 0.1]]
        #expect(StudyChoice.best(dice) == (0, 2))
        #expect(StudyChoice.best([[0.1, 0.2], [0.2, 0.5]]) == (1, 1))
    }

    /// Within a family a later candidate wins only when strictly better; untuned candidates
    /// are left out; each family has its own choice.
    @Test func eachFamilyChoosesItsBestTunedCandidateOnMetaValidation() throws {
        let plan = StudyPlan.standard(pretraining: false)
        func tuned(_ best: Double, snapshot: Int = 0, setting: Int = 0) -> StudyState.Tuned {
            var dice = Array(repeating: Array(repeating: 0.0, count: 9), count: 2)
            dice[snapshot][setting] = best
            return .init(dice: dice, bestSnapshot: snapshot, bestSetting: setting)
        }
        let chosen = StudyChoice.bestPerFamily(plan: plan, tuned: [
            "maml-second": tuned(0.40), "maml-first": tuned(0.45, snapshot: 1, setting: 3), "maml++-second": tuned(0.45),
            "transfer@0.001": tuned(0.30), "transfer@0.003": tuned(0.35, setting: 8), "scratch": tuned(0.2),
        ])
        #expect(chosen[.maml]?.candidate == "maml-first" && chosen[.maml]?.snapshot == 1 && chosen[.maml]?.setting == 3)
        #expect(chosen[.transfer]?.candidate == "transfer@0.003" && chosen[.transfer]?.validationDice == 0.35)
        #expect(chosen[.scratch]?.candidate == "scratch")
        #expect(chosen[.transferHeads] == nil)
    }

    /// Snapshot steps: each fraction at its share of the phase's steps; a phase too short for
    /// its fractions snapshots several at one step; a warm start covers the first half and
    /// meta-training the second.
    @Test func snapshotsFallAtTheirShareOfThePhase() {
        let fractions = [0.25, 0.5, 0.75, 1.0]
        #expect(TrainingPhase.snapshotSteps(100, fractions: fractions) == [25: [0.25], 50: [0.5], 75: [0.75], 100: [1.0]])
        #expect(TrainingPhase.snapshotSteps(2, fractions: fractions) == [1: [0.25, 0.5], 2: [0.75, 1.0]])
        #expect(TrainingPhase.snapshotSteps(10, fractions: fractions, within: 0.5) == [5: [0.25], 10: [0.5]])
        #expect(TrainingPhase.snapshotSteps(10, fractions: fractions, from: 0.5) == [5: [0.75], 10: [1.0]])
        let phase = TrainingPhase(cost: 0.5, seconds: 10, metaBatch: 4, fractions: fractions, before: .init(coreSeconds: 3, samples: 8, steps: 2))
        #expect(phase.steps == 20)
        let spent = phase.spent(at: 5)
        #expect(spent.coreSeconds == 5.5 && spent.samples == 28 && spent.steps == 7)
    }

    /// The one paired-difference line and the one JSON shape of a mean with its CI.
    @Test func aMeanWithItsIntervalHasOneTextAndOneJSONShape() throws {
        let d = MeanCI.pairedDifference([0.5, 0.6, 0.7, 0.4], [0.4, 0.45, 0.5, 0.42])
        #expect(d.verdict == "includes zero" || d.verdict == "above zero")
        #expect(d.differenceText.hasPrefix(String(format: "%+.3f [", d.mean)))
        let json = String(decoding: try JSONFile.encode(d), as: UTF8.self)
        for key in ["mean", "ci95", "lower", "upper", "n"] { #expect(json.contains("\"\(key)\"")) }
        #expect(try canonicalDecoder().decode(MeanCI.self, from: Data(json.utf8)) == d)
        // The older shape still reads.
        let old = try canonicalDecoder().decode(MeanCI.self, from: Data(#"{"mean":0.5,"halfWidth":0.1,"count":3}"#.utf8))
        #expect(old.mean == 0.5 && old.halfWidth == 0.1 && old.count == 3)
    }
}
