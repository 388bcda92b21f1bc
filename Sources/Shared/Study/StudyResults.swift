import Datasets
import Evaluation
import MetaLearning

/// A finished study's results (`results.json`): the same values the report's table prints.
public struct StudyResults: Codable, Sendable {
    public struct Split: Codable, Sendable {
        public var metaTrain: [String]
        public var metaValidation: [String]
        public var metaTest: [String]
    }

    public struct Snapshot: Codable, Sendable {
        public var fraction: Double
        public var coreSeconds: Double
        public var taskSamples: Int
        public var steps: Int
    }

    /// A candidate's tuning: meta-validation Dice per snapshot (rows) and setting (columns).
    public struct Candidate: Codable, Sendable {
        public var family: Family
        public var grid: [String]
        public var validationDice: [[Double]]
        public var bestSnapshot: Int
        public var bestSetting: String
        public var snapshots: [Snapshot]
    }

    public struct Chosen: Codable, Sendable {
        public var candidate: String
        public var validationDice: Double
    }

    /// Meta-test scores of one method: means with 95% CIs over instances.
    public struct Scores: Codable, Sendable {
        public var dice: MeanCI
        public var iou: MeanCI
        public var precision: MeanCI
        public var recall: MeanCI
        public var hd95: MeanCI
        public var hd95Unit: String
        public var perTaskDice: [String: MeanCI]
        public var instanceDice: [Double]

        public init(_ r: MetaTest.MethodResult) {
            dice = r.dice
            iou = r.iou
            precision = r.precision
            recall = r.recall
            hd95 = r.hd95
            hd95Unit = r.hd95Unit
            perTaskDice = r.perTaskDice
            instanceDice = r.instanceDice
        }
    }

    public var dataset: String
    public var datasetFingerprint: String
    public var split: Split
    public var budgetCoreSeconds: Double
    public var stepCostCoreSeconds: [String: Double]
    public var shots: Int
    public var query: Int
    public var seed: UInt64
    public var metaBatch: Int
    public var imageSize: Int
    public var parameters: Int
    public var candidates: [String: Candidate]
    public var chosen: [Family: Chosen]
    public var metaTest: [String: Scores]
    public var pairedDifferences: [String: MeanCI]
    public var diceVsBudget: [Family: [StudyState.Point]]
    public var diceVsShots: [Family: [StudyState.Point]]
    public var stageSeconds: [String: Double]
}

extension StudyResults {
    init(state: StudyState, settings: StudyRunner.Settings, names: (([Int]) -> [String]), partition: TaskSplit.Partition,
         testNames: [String]) {
        dataset = settings.dataset.name
        datasetFingerprint = settings.dataset.identity.fingerprint
        split = Split(metaTrain: names(partition.train), metaValidation: names(partition.validation), metaTest: testNames)
        budgetCoreSeconds = settings.budget
        stepCostCoreSeconds = state.stepCost
        shots = settings.mainShots
        query = settings.query
        seed = settings.base.seed
        metaBatch = settings.base.metaBatch
        imageSize = settings.base.meta.model.input.height
        parameters = (try? MetaLayout(config: settings.base.meta).model.count) ?? 0
        var candidates: [String: Candidate] = [:]
        for c in state.fingerprint.plan.candidates {
            guard let t = state.tuned[c.name], let trained = state.trained[c.name] else { continue }
            candidates[c.name] = Candidate(
                family: c.family, grid: c.grid.map(\.description), validationDice: t.dice, bestSnapshot: t.bestSnapshot,
                bestSetting: c.grid[t.bestSetting].description,
                snapshots: trained.fractions.indices.map {
                    Snapshot(fraction: trained.fractions[$0], coreSeconds: trained.coreSeconds[$0], taskSamples: trained.taskSamples[$0],
                             steps: trained.steps[$0])
                })
        }
        self.candidates = candidates
        chosen = state.chosen.mapValues { Chosen(candidate: $0.candidate, validationDice: $0.validationDice) }
        metaTest = state.test.mapValues(Scores.init)
        pairedDifferences = state.differences
        diceVsBudget = state.budgetCurve
        diceVsShots = state.shotsCurve
        stageSeconds = state.stageSeconds
    }
}
