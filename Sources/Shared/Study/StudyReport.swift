import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning

/// A finished study's outputs: the table (printed and `report.txt`), `results.json`, and the
/// pictures `dice_vs_budget.png`, `dice_vs_shots.png`, `per_task.png` and `adaptation.png`.
struct StudyReport {
    let state: StudyState
    let settings: StudyRunner.Settings
    let source: TaskSource
    let partition: TaskSplit.Partition

    static let colors: [Family: (UInt8, UInt8, UInt8)] = [
        .maml: (200, 40, 40), .transferHeads: (30, 110, 200), .transfer: (90, 170, 230),
        .scratch: (120, 120, 120), .pretrainedMAML: (220, 140, 20),
    ]

    let test: (source: TaskSource, tasks: [Int])

    func names(_ tasks: [Int]) -> [String] { tasks.map { source.taskNames[$0] } }
    var testNames: [String] { test.tasks.map { test.source.taskNames[$0] } }

    var text: String {
        var lines: [String] = []
        let budget = Int(settings.budget)
        lines.append("Study on \(settings.dataset.name): \(partition.train.count) meta-train, \(partition.validation.count) meta-validation, \(test.tasks.count) meta-test tasks\(test.source.identity == source.identity ? "" : " of \(test.source.identity.name)")")
        lines.append("budget \(budget) core-seconds of training per candidate; every choice made on meta-validation (\(settings.validationPerTask) instances per task); meta-test once (\(settings.testPerTask) per task), \(settings.mainShots)-shot, \(settings.query) query images")
        lines.append("")
        lines.append("Candidates (meta-validation Dice of the best snapshot and setting):")
        let width = max(26, (state.fingerprint.plan.candidates.map(\.name.count).max() ?? 0) + 2)
        for c in state.fingerprint.plan.candidates {
            guard let t = state.tuned[c.name], let trained = state.trained[c.name] else { continue }
            let chosen = state.chosen[c.family]?.candidate == c.name ? "  <- chosen for \(c.family.rawValue)" : ""
            lines.append("  " + c.name.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "%.3f  ", t.dice[t.bestSnapshot][t.bestSetting]) + c.grid[t.bestSetting].description
                + " after \(Int((trained.fractions[t.bestSnapshot] * 100).rounded()))% of the budget (\(trained.steps[t.bestSnapshot]) steps)" + chosen)
        }
        lines.append("")
        let heldOut = test.source.identity == source.identity ? settings.split.testPatterns.joined(separator: ", ")
            : "\(test.source.identity.name), another dataset: \(testNames.joined(separator: ", "))"
        lines.append("Meta-test, \(settings.mainShots)-shot (held-out: \(heldOut)):")
        lines.append("  method                  Dice (95% CI)      instances")
        for (name, r) in state.test.sorted(by: { order($0.key) < order($1.key) }) {
            lines.append("  " + name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%.3f ± %.3f      %d", r.dice.mean, r.dice.halfWidth, r.dice.count))
        }
        lines.append("")
        lines.append("Paired differences on the same meta-test instances (95% CI):")
        for (name, d) in state.differences.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padding(toLength: 40, withPad: " ", startingAt: 0) + d.differenceText)
        }
        lines.append("")
        lines.append("Meta-test Dice against shots K:")
        let ks = settings.shots
        lines.append("  family                " + ks.map { String(format: "K=%-12d", $0) }.joined())
        for (family, points) in state.shotsCurve.sorted(by: { $0.key < $1.key }) {
            let row = ks.map { k in points.first { $0.x == Double(k) }.map { String(format: "%.3f ± %.3f  ", $0.dice.mean, $0.dice.halfWidth) } ?? "-              " }
            lines.append("  " + family.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0) + row.joined())
        }
        lines.append("")
        lines.append("Meta-test Dice against training budget (core-seconds):")
        for (family, curve) in state.budgetCurve.sorted(by: { $0.key < $1.key }) {
            let points = curve.map { String(format: "%.0f: %.3f", $0.x, $0.dice.mean) }
            lines.append("  " + family.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0) + points.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// Report order of a meta-test row: families in their order, then other methods.
    private func order(_ name: String) -> Int {
        Family(rawValue: name).flatMap { Family.allCases.firstIndex(of: $0) } ?? 99
    }

    /// Dice against x for each family, with the CI as a band of two thin lines.
    func curve(_ points: [Family: [StudyState.Point]], title: String, xLabel: String) -> Canvas {
        var series: [Chart.Series] = []
        for (family, p) in points.sorted(by: { $0.key < $1.key }) {
            series.append(.init(label: family.rawValue, points: p.map { ($0.x, $0.dice.mean) }, color: Self.colors[family] ?? (0, 0, 0)))
        }
        return Chart.render([Chart.Panel(title: title, series: series, yRange: (0, 1))], xLabel: xLabel, width: 640, height: 400)
    }

    func write(runner: StudyRunner) throws {
        let out = settings.out
        let table = text
        print(table)
        try TextFile.write(table, to: out + "/report.txt")
        try JSONFile.write(StudyResults(state: state, settings: settings, names: names, partition: partition, testNames: testNames),
                           to: out + "/results.json")
        try curve(state.budgetCurve, title: "meta-test Dice vs training budget", xLabel: "core-seconds").write(to: out + "/dice_vs_budget.png")
        try curve(state.shotsCurve, title: "meta-test Dice vs shots K", xLabel: "K").write(to: out + "/dice_vs_shots.png")
        try IntervalChart.render(state.test.sorted { order($0.key) < order($1.key) }.map { r in
            IntervalChart.Group(label: r.key, color: Family(rawValue: r.key).flatMap { Self.colors[$0] } ?? (0, 0, 0),
                                intervals: testNames.map { r.value.perTaskDice[$0] ?? MeanCI([]) })
        }, categories: testNames.map { $0.split(separator: "/").dropFirst().joined(separator: "/") },
           title: "meta-test Dice per task (95% CI)").write(to: out + "/per_task.png")
        if state.chosen[.maml] != nil {
            let method = try runner.chosenAdaptation(.maml).adaptation
            // Before adaptation: the meta-learned initialisation, whichever way it adapts.
            let meta: [Float]
            switch method {
            case .maml(let values, _, _, _): meta = values
            case .fineTune(let start, _): meta = start
            case .none(let parameters): meta = parameters
            }
            let seed = settings.base.seed &+ 2 &* 7919
            let instances = test.tasks.map { task in TaskRef(task: task, index: TaskSampler.evaluation(seed: seed, pool: [task], perTask: 1)[0].index) }
            try AdaptationPictures.render(source: test.source, model: settings.base.meta.model, instances: instances, seed: seed,
                                          before: meta, method: method).write(to: out + "/adaptation.png")
        }
    }
}
