import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning

/// A finished study's outputs: the table (printed and `report.txt`), `results.json`, the
/// charts `dice_vs_budget.svg` and `dice_vs_shots.svg`, the overlays `adaptation.png`, and
/// `index.html` with all of them and the per-task table.
struct StudyReport {
    let state: StudyState
    let settings: StudyRunner.Settings
    let source: TaskSource
    let partition: TaskSplit.Partition

    static let colors: [Family: (UInt8, UInt8, UInt8)] = [
        .maml: (200, 40, 40), .transferHeads: (30, 110, 200), .transfer: (90, 170, 230), .transferMultiClass: (20, 80, 160),
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
        if !state.differences.isEmpty {
            lines.append("")
            lines.append("Paired differences on the same meta-test instances (95% CI):")
            for (name, d) in state.differences.sorted(by: { $0.key < $1.key }) {
                lines.append("  " + name.padding(toLength: 40, withPad: " ", startingAt: 0) + d.differenceText)
            }
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

    /// Dice against x for each family, with each point's 95% CI.
    func curve(_ points: [Family: [StudyState.Point]], title: String, xLabel: String, ordinal: Bool) -> SVG {
        let series = points.sorted(by: { $0.key < $1.key }).map { family, p in
            PanelChart.Series(label: family.rawValue, color: Self.colors[family] ?? (0, 0, 0),
                              points: p.map { .init(x: $0.x, y: $0.dice.mean, lower: $0.dice.lower, upper: $0.dice.upper) })
        }
        var layout = PanelChart.Layout(columns: 1, xLabel: xLabel, yLabel: "meta-test Dice")
        if ordinal { layout.xScale = .ordinal(Array(Set(points.values.flatMap { $0.map(\.x) })).sorted()) }
        layout.panelWidth = 520
        layout.panelHeight = 300
        return PanelChart.render([.init(title: title, series: series)], title: "Study on \(settings.dataset.name)", layout: layout)
    }

    /// Meta-test Dice per task and method, with 95% CIs.
    var perTaskTable: [[String]] {
        let methods = state.test.sorted { order($0.key) < order($1.key) }
        return [["task"] + methods.map(\.key)] + testNames.map { task in
            [task] + methods.map { $0.value.perTaskDice[task].map { String(format: "%.3f ± %.3f", $0.mean, $0.halfWidth) } ?? "-" }
        }
    }

    func write(runner: StudyRunner) throws {
        let out = settings.out
        let table = text
        print(table)
        try TextFile.write(table, to: out + "/report.txt")
        try JSONFile.write(StudyResults(state: state, settings: settings, names: names, partition: partition, testNames: testNames),
                           to: out + "/results.json")
        let budget = curve(state.budgetCurve, title: "Meta-test Dice against training budget", xLabel: "core-seconds", ordinal: false)
        let shots = curve(state.shotsCurve, title: "Meta-test Dice against shots K", xLabel: "K", ordinal: true)
        try budget.write(to: out + "/dice_vs_budget.svg")
        try shots.write(to: out + "/dice_vs_shots.svg")
        var html = HTMLReport(title: "MedMAML study on \(settings.dataset.name)")
        html.preformatted(table)
        html.figure(shots, caption: "Each family's chosen candidate and setting, at every K; bars are 95% CIs over meta-test instances.")
        html.figure(budget, caption: "Each family's best snapshot at each share of the budget, chosen on meta-validation.")
        html.heading("Meta-test Dice per task (\(settings.mainShots)-shot, mean ± 95% CI half-width)")
        html.table(perTaskTable)
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
            html.image("adaptation.png", caption: "MAML's chosen model on one instance of each meta-test task: before and after adaptation.")
        }
        try html.write(to: out + "/index.html")
    }
}
