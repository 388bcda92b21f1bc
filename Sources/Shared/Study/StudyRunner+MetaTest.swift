import Evaluation
import Foundation
import MetaLearning

/// Stage 4: the meta-test, once, and the curves against budget and shots.
extension StudyRunner {
    /// MAML from the random initialisation with the recipe a pretrained candidate uses after
    /// its warm start: the pretraining comparison is that recipe with and without pretraining.
    func plainRecipe(of recipe: StudyPlan.MetaRecipe) -> StudyPlan.Candidate? {
        plan.candidates.first {
            guard case .meta(let r) = $0.training else { return false }
            return r.warmStart == nil && r.order == recipe.order && !r.learnedInnerRates && !r.multiStepLoss
                && !r.headOnlyInnerLoop && !r.pseudoTasks && !r.prototypeHead && !r.unionTasks && r.innerSteps == nil
        }
    }

    func test() throws {
        var methods: [MetaTest.Method] = []
        for family in families {
            methods.append(.init(name: family.rawValue, adaptation: try chosenAdaptation(family).adaptation))
        }
        var plainName: String?
        if let chosen = state.chosen[.pretrainedMAML], let c = candidate(chosen.candidate), case .meta(let recipe) = c.training,
           let plain = plainRecipe(of: recipe), state.chosen[.maml]?.candidate != plain.name, let t = state.tuned[plain.name] {
            methods.append(.init(name: plain.name, adaptation: try adaptation(plain, snapshot: t.bestSnapshot, setting: plain.grid[t.bestSetting])))
            plainName = plain.name
        }
        let results = try evaluate(methods, on: testSet.tasks, of: testSet.source, perTask: settings.testPerTask, shots: settings.mainShots, seedOffset: 2)
        for r in results { state.test[r.name] = r }
        let byName = Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.instanceDice) })
        guard let maml = byName[Family.maml.rawValue] else { throw StudyError("the plan has no maml candidate") }
        for other in families where other != .maml {
            if let b = byName[other.rawValue] { state.differences["maml - \(other.rawValue)"] = MeanCI.pairedDifference(maml, b) }
        }
        if let pretrained = byName[Family.pretrainedMAML.rawValue] {
            let name = plainName ?? Family.maml.rawValue
            if let b = byName[name] { state.differences["pretrained-maml - \(name)"] = MeanCI.pairedDifference(pretrained, b) }
        }
    }

    /// Meta-test Dice of each family's chosen candidate at every snapshot, with the setting
    /// chosen on meta-validation for that snapshot.
    func budgetCurve() throws {
        var methods: [MetaTest.Method] = [], owners: [(Family, Double)] = []
        for family in families {
            guard let choice = state.chosen[family], let c = candidate(choice.candidate), let t = state.tuned[c.name] else { continue }
            let trained = try trained(c)
            for s in trained.fractions.indices where s != choice.snapshot {
                methods.append(.init(name: "\(family.rawValue)@\(s)",
                                     adaptation: try adaptation(c, snapshot: s, setting: c.grid[StudyChoice.firstBest(t.dice[s])])))
                owners.append((family, trained.coreSeconds[s]))
            }
        }
        let results = try evaluate(methods, on: testSet.tasks, of: testSet.source, perTask: settings.testPerTask, shots: settings.mainShots, seedOffset: 2)
        var points: [Family: [StudyState.Point]] = [:]
        for (r, (family, x)) in zip(results, owners) { points[family, default: []].append(.init(x: x, dice: r.dice)) }
        // At the chosen snapshot the best setting is the chosen one: the meta-test scored it.
        for family in families {
            guard let choice = state.chosen[family], let tested = state.test[family.rawValue] else { continue }
            points[family, default: []].append(.init(x: try trained(candidate(choice.candidate)!).coreSeconds[choice.snapshot], dice: tested.dice))
            state.budgetCurve[family] = (points[family] ?? []).sorted { $0.x < $1.x }
        }
    }

    /// Meta-test Dice of each family's chosen model against shots, the adaptation setting
    /// chosen on meta-validation at each K.
    func shotsCurve() throws {
        guard let first = families.first else { return }
        for k in settings.shots where !(state.shotsCurve[first] ?? []).contains(where: { $0.x == Double(k) }) {
            if k == settings.mainShots && families.allSatisfy({ state.test[$0.rawValue] != nil }) {
                // The meta-test already scored each family's choice at this K, with the
                // setting this loop would choose (the best on meta-validation at that snapshot).
                for family in families {
                    if let tested = state.test[family.rawValue] { state.shotsCurve[family, default: []].append(.init(x: Double(k), dice: tested.dice)) }
                }
                try state.save(statePath)
                continue
            }
            var methods: [MetaTest.Method] = []
            for family in families {
                guard let choice = state.chosen[family], let c = candidate(choice.candidate) else { continue }
                let snap = try snapshot(c, choice.snapshot)
                let candidates = c.grid.map(snap.adaptation)
                let validation = try evaluate(candidates.enumerated().map { .init(name: "\($0.offset)", adaptation: $0.element) },
                                              on: partition.validation, perTask: settings.validationPerTask, shots: k, seedOffset: 1)
                methods.append(.init(name: family.rawValue, adaptation: candidates[StudyChoice.firstBest(validation.map(\.dice.mean))]))
            }
            let results = try evaluate(methods, on: testSet.tasks, of: testSet.source, perTask: settings.testPerTask, shots: k, seedOffset: 2)
            for r in results {
                if let family = Family(rawValue: r.name) { state.shotsCurve[family, default: []].append(.init(x: Double(k), dice: r.dice)) }
            }
            try state.save(statePath)
        }
    }
}
