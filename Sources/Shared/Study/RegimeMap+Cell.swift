import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning
import Training

/// One cell of the map: train, choose on meta-validation at each s, test at each K.
extension RegimeMap {
    /// The cell's study, its candidates trained (or read back from its folder).
    func preparedRunner(_ cell: Cell) throws -> (StudyRunner, TaskUniverse) {
        let (spec, source) = try universe(cell)
        var base = settings.base
        base.seed = cell.seed
        var study = StudyRunner.Settings(
            out: settings.out + "/" + cell.name, base: base, dataset: spec, split: source.defaultSplit,
            protocol: StudyProtocol(budget: settings.budget, fractions: settings.fractions, shots: settings.shots,
                                    mainShots: settings.mainShots, validationPerTask: settings.validationPerTask,
                                    testPerTask: settings.testPerTask, costs: settings.costs ?? state.stepCost))
        study.threads = settings.threads
        let runner = try StudyRunner(settings: study, plan: plan(for: cell), source: source, launcher: launcher, logger: logger, say: say)
        try runner.prepare()
        return (runner, source)
    }

    /// The cell's models on the cross-domain dataset: each family's choice at each s (made on
    /// the universe's meta-validation) at every K of the cross-domain test, once.
    func crossDomainTest(_ cell: Cell, _ cross: CrossDomain) throws -> RegimeMapState.CrossDomainResult {
        guard let done = state.cells[cell.name] else { throw StudyError("cell \(cell.name) has not run") }
        let (runner, _) = try preparedRunner(cell)
        var test: [Family: [Int: [Int: [Double]]]] = [:], instanceTasks: [Int: [String]] = [:]
        for k in cross.shots {
            var methods: [MetaTest.Method] = [], keys: [(Family, Int)] = []
            for (family, choices) in done.choices.sorted(by: { $0.key < $1.key }) {
                for (s, choice) in choices.sorted(by: { $0.key < $1.key }) {
                    guard let c = runner.candidate(choice.candidate), c.grid.indices.contains(choice.setting) else {
                        throw StudyError("cell \(cell.name) chose \(choice.candidate), which its plan does not hold")
                    }
                    let snapshot = try runner.snapshot(c, try runner.trained(c).fractions.count - 1)
                    methods.append(.init(name: "\(family.rawValue)@\(s)", adaptation: snapshot.adaptation(c.grid[choice.setting].with(steps: s))))
                    keys.append((family, s))
                }
            }
            let results = try runner.evaluate(methods, on: cross.tasks, of: cross.source, perTask: cross.perTask, shots: k, seedOffset: 3)
            for (r, (family, s)) in zip(results, keys) { test[family, default: [:]][k, default: [:]][s] = r.instanceDice }
            instanceTasks[k] = TaskSampler.evaluation(seed: cell.seed &+ 3 &* 7919, pool: cross.tasks, perTask: cross.perTask)
                .map { cross.source.taskNames[$0.task] }
        }
        return .init(dataset: cross.name, fingerprint: cross.fingerprint, test: test, instanceTasks: instanceTasks)
    }

    func runCell(_ cell: Cell) throws -> RegimeMapState.CellResult {
        let (runner, source) = try preparedRunner(cell)
        let plan = runner.plan
        let base = runner.settings.base
        if state.stepCost == nil { state.stepCost = runner.state.stepCost }
        let families = Set(plan.candidates.map(\.family)).sorted()
        var spent: [String: TrainingPhase.Spent] = [:]
        for c in plan.candidates {
            let t = try runner.trained(c)
            spent[c.name] = .init(coreSeconds: t.coreSeconds.last ?? 0, samples: t.taskSamples.last ?? 0, steps: t.steps.last ?? 0)
        }
        // Meta-validation at the main K: every candidate's setting at every s, from its final snapshot.
        let final = { (c: StudyPlan.Candidate) throws -> StudyRunner.Snapshot in
            try runner.snapshot(c, try runner.trained(c).fractions.count - 1)
        }
        var choices: [Family: [Int: RegimeMapState.Choice]] = [:]
        var validation: [String: [Int: [Int: Double]]] = [:]
        var tested: [Family: [Int: (StudyPlan.Candidate, AdaptationSetting)]] = [:]
        for family in families {
            let candidates = plan.candidates.filter { $0.family == family }
            var methods: [MetaTest.Method] = [], keys: [(candidate: Int, setting: Int, s: Int)] = []
            for (ci, c) in candidates.enumerated() {
                let snap = try final(c)
                for (g, setting) in c.grid.enumerated() {
                    for s in settings.steps {
                        methods.append(.init(name: "\(c.name)/\(g)@\(s)", adaptation: snap.adaptation(setting.with(steps: s))))
                        keys.append((ci, g, s))
                    }
                }
            }
            runner.say("map: \(cell.name): choosing \(family.rawValue)'s settings on meta-validation")
            let results = try runner.evaluate(methods, on: runner.partition.validation, perTask: settings.validationPerTask,
                                              shots: settings.mainShots, seedOffset: 1)
            for (key, r) in zip(keys, results) { validation[candidates[key.candidate].name, default: [:]][key.setting, default: [:]][key.s] = r.dice.mean }
            for s in settings.steps {
                let at = keys.indices.filter { keys[$0].s == s }
                let best = at[StudyChoice.firstBest(at.map { results[$0].dice.mean })]
                let c = candidates[keys[best].candidate]
                choices[family, default: [:]][s] = .init(candidate: c.name, setting: keys[best].setting, validationDice: results[best].dice.mean)
                tested[family, default: [:]][s] = (c, c.grid[keys[best].setting])
            }
        }
        // Meta-test at every K: each family's choice at each s.
        var test: [Family: [Int: [Int: [Double]]]] = [:]
        var instanceTasks: [Int: [String]] = [:]
        for k in settings.shots {
            var methods: [MetaTest.Method] = [], keys: [(Family, Int)] = []
            for family in families {
                for s in settings.steps {
                    guard let (c, setting) = tested[family]?[s] else { continue }
                    methods.append(.init(name: "\(family.rawValue)@\(s)", adaptation: try final(c).adaptation(setting.with(steps: s))))
                    keys.append((family, s))
                }
            }
            runner.say("map: \(cell.name): meta-test at K = \(k)")
            let results = try runner.evaluate(methods, on: runner.partition.test, perTask: settings.testPerTask, shots: k, seedOffset: 2)
            for (r, (family, s)) in zip(results, keys) { test[family, default: [:]][k, default: [:]][s] = r.instanceDice }
            let seed = base.seed &+ 2 &* 7919
            instanceTasks[k] = TaskSampler.evaluation(seed: seed, pool: runner.partition.test, perTask: settings.testPerTask)
                .map { source.taskNames[$0.task] }
        }
        var result = RegimeMapState.CellResult(choices: choices, test: test, instanceTasks: instanceTasks, budget: nil, spent: spent,
                                               validation: validation)
        if settings.budgetCurveCells.contains(cell) { result.budget = try budgetCurve(runner, plan: plan, families: families) }
        return result
    }

    /// Dice against budget at the main K, for s = fast and s = the largest: at each snapshot
    /// before the last, each family's setting re-chosen on meta-validation.
    private func budgetCurve(_ runner: StudyRunner, plan: StudyPlan, families: [Family]) throws -> [Family: [RegimeMapState.BudgetPoint]] {
        let stepsOfCurve = [settings.fastSteps, settings.steps.max() ?? settings.fastSteps].filter(settings.steps.contains)
        var out: [Family: [RegimeMapState.BudgetPoint]] = [:]
        for family in families {
            let candidates = plan.candidates.filter { $0.family == family && $0.training != .none }
            guard let reference = candidates.first else { continue }
            let fractions = try runner.trained(reference).fractions
            for f in fractions.indices.dropLast() {
                var methods: [MetaTest.Method] = [], keys: [(Int, Int, Int)] = []
                for (ci, c) in candidates.enumerated() {
                    let snap = try runner.snapshot(c, f)
                    for (g, setting) in c.grid.enumerated() {
                        for s in stepsOfCurve {
                            methods.append(.init(name: "\(ci)/\(g)@\(s)", adaptation: snap.adaptation(setting.with(steps: s))))
                            keys.append((ci, g, s))
                        }
                    }
                }
                let validation = try runner.evaluate(methods, on: runner.partition.validation, perTask: settings.validationPerTask,
                                                     shots: settings.mainShots, seedOffset: 1)
                var chosen: [MetaTest.Method] = []
                for s in stepsOfCurve {
                    let at = keys.indices.filter { keys[$0].2 == s }
                    let best = at[StudyChoice.firstBest(at.map { validation[$0].dice.mean })]
                    chosen.append(.init(name: "\(s)", adaptation: methods[best].adaptation))
                }
                let results = try runner.evaluate(chosen, on: runner.partition.test, perTask: settings.testPerTask,
                                                  shots: settings.mainShots, seedOffset: 2)
                var dice: [Int: [Double]] = [:]
                for (s, r) in zip(stepsOfCurve, results) { dice[s] = r.instanceDice }
                out[family, default: []].append(.init(fraction: fractions[f], coreSeconds: try runner.trained(reference).coreSeconds[f], dice: dice))
            }
        }
        return out
    }
}
