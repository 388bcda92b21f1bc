import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Training

/// Stage 3: every candidate's snapshots and adaptation settings scored on meta-validation.
extension StudyRunner {
    /// A candidate's snapshot, read once: its parameters and the configuration they adapt with.
    struct Snapshot {
        var values: [Float]
        var config: MetaConfig
        var modelCount: Int

        /// The adaptation of this snapshot with one setting of a grid.
        func adaptation(_ setting: AdaptationSetting) -> MetaTest.Adaptation {
            setting.adaptation(meta: values, config: config, modelCount: modelCount)
        }
    }

    /// What training recorded for a candidate (a study trains every candidate before it tunes).
    func trained(_ candidate: StudyPlan.Candidate) throws -> StudyState.Trained {
        guard let trained = state.trained[candidate.name] else { throw StudyError("\(candidate.name) has not been trained") }
        return trained
    }

    /// Snapshot `index` of a candidate. A meta-learned snapshot adapts with its recipe's
    /// configuration; a warm start's snapshot and every other candidate's with the study's.
    func snapshot(_ candidate: StudyPlan.Candidate, _ index: Int) throws -> Snapshot {
        let trained = try trained(candidate)
        let config: MetaConfig
        if case .meta(let recipe) = candidate.training, trained.fractions[index] > (recipe.warmStart == nil ? 0 : 0.5) {
            config = metaConfig(recipe, steps: 1).meta
        } else {
            config = settings.base.meta
        }
        let layout = try MetaLayout(config: config)
        let file = try Safetensors.read(path: settings.out + "/" + trained.files[index])
        return Snapshot(values: try ParameterFile.load(file, layout: layout, path: trained.files[index]), config: config,
                        modelCount: layout.model.count)
    }

    /// The adaptation of a candidate's snapshot with one setting of its grid.
    func adaptation(_ candidate: StudyPlan.Candidate, snapshot index: Int, setting: AdaptationSetting) throws -> MetaTest.Adaptation {
        try snapshot(candidate, index).adaptation(setting)
    }

    func tune(_ candidate: StudyPlan.Candidate, shots: Int) throws -> StudyState.Tuned {
        let trained = try trained(candidate)
        var methods: [MetaTest.Method] = []
        for s in trained.fractions.indices {
            let snap = try snapshot(candidate, s)
            for (g, setting) in candidate.grid.enumerated() {
                methods.append(.init(name: "\(s)/\(g)", adaptation: snap.adaptation(setting)))
            }
        }
        let results = try evaluate(methods, on: partition.validation, perTask: settings.validationPerTask, shots: shots, seedOffset: 1)
        let grid = candidate.grid.count
        let dice = trained.fractions.indices.map { s in (0..<grid).map { results[s * grid + $0].dice.mean } }
        let best = StudyChoice.best(dice)
        say("\(candidate.name): best on meta-validation \(String(format: "%.3f", dice[best.snapshot][best.setting])) with \(candidate.grid[best.setting]) after \(Int(trained.fractions[best.snapshot] * 100))% of the budget")
        return StudyState.Tuned(dice: dice, bestSnapshot: best.snapshot, bestSetting: best.setting)
    }

    /// Scores methods on sampled instances of `tasks` (validation or test) of the study's
    /// source (or `other`) with `shots` shots.
    /// The instances depend only on the seed, the offset (1: meta-validation, 2: meta-test)
    /// and the tasks, so every method meets the same ones.
    func evaluate(_ methods: [MetaTest.Method], on tasks: [Int], of other: TaskSource? = nil, perTask: Int, shots: Int,
                  seedOffset: UInt64) throws -> [MetaTest.MethodResult] {
        let seed = settings.base.seed &+ seedOffset &* 7919
        let instances = TaskSampler.evaluation(seed: seed, pool: tasks, perTask: perTask)
        let test = MetaTest(source: other ?? source, model: settings.base.meta.model, instances: instances, seed: seed, support: shots, query: settings.query)
        let progress = Throttle(every: 15), say = self.say
        do {
            // SIGINT or SIGTERM ends the stage at the next adaptation; it is not recorded, so
            // running the same command again does it whole.
            return try test.run(methods, threads: settings.threads) { done, total in
                if progress.due() && done > 1 { say("  \(done)/\(total) adaptations  ETA \(ProgressLine.duration(progress.eta(done: done, total: total)))") }
            } stop: {
                StopSignal.received != nil
            }
        } catch is MetaTest.Stopped {
            throw StudyStopped(signal: StopSignal.received ?? SIGINT)
        }
    }

    /// The adaptation a family's choice meets the meta-test with.
    func chosenAdaptation(_ family: Family) throws -> (candidate: StudyPlan.Candidate, adaptation: MetaTest.Adaptation) {
        guard let choice = state.chosen[family], let c = candidate(choice.candidate) else { throw StudyError("no choice for \(family.rawValue)") }
        return (c, try adaptation(c, snapshot: choice.snapshot, setting: c.grid[choice.setting]))
    }
}
