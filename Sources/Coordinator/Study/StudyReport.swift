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

    static let colors: [String: (UInt8, UInt8, UInt8)] = [
        "maml": (200, 40, 40), "transfer-heads": (30, 110, 200), "transfer": (90, 170, 230),
        "scratch": (120, 120, 120), "pretrained-maml": (220, 140, 20),
    ]

    func names(_ tasks: [Int]) -> [String] { tasks.map { source.taskNames[$0] } }

    var text: String {
        var lines: [String] = []
        let budget = Int(settings.budget)
        lines.append("Study on \(settings.dataset.name): \(partition.train.count) meta-train, \(partition.validation.count) meta-validation, \(partition.test.count) meta-test tasks")
        lines.append("budget \(budget) core-seconds of training per candidate; every choice made on meta-validation (\(settings.validationPerTask) instances per task); meta-test once (\(settings.testPerTask) per task), \(settings.mainShots)-shot, \(settings.query) query images")
        lines.append("")
        lines.append("Candidates (meta-validation Dice of the best snapshot and setting):")
        let width = max(26, (state.fingerprint.plan.candidates.map(\.name.count).max() ?? 0) + 2)
        for c in state.fingerprint.plan.candidates {
            guard let t = state.tuned[c.name], let trained = state.trained[c.name] else { continue }
            let chosen = state.chosen[c.family]?.candidate == c.name ? "  <- chosen for \(c.family)" : ""
            lines.append("  " + c.name.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "%.3f  ", t.dice[t.bestSnapshot][t.bestSetting]) + c.grid[t.bestSetting].description
                + " after \(Int((trained.fractions[t.bestSnapshot] * 100).rounded()))% of the budget (\(trained.steps[t.bestSnapshot]) steps)" + chosen)
        }
        lines.append("")
        lines.append("Meta-test, \(settings.mainShots)-shot (held-out: \(settings.split.testPatterns.joined(separator: ", "))):")
        lines.append("  method                  Dice (95% CI)      instances")
        for (name, r) in state.test.sorted(by: { order($0.key) < order($1.key) }) {
            lines.append("  " + name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%.3f ± %.3f      %d", r.dice.mean, r.dice.halfWidth, r.dice.count))
        }
        lines.append("")
        lines.append("Paired differences on the same meta-test instances (95% CI):")
        for (name, d) in state.differences.sorted(by: { $0.key < $1.key }) {
            let verdict = d.lower > 0 ? "above zero" : (d.upper < 0 ? "below zero" : "includes zero")
            lines.append("  " + name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%+.3f [%+.3f, %+.3f]  ", d.mean, d.lower, d.upper) + verdict)
        }
        lines.append("")
        lines.append("Meta-test Dice against shots K:")
        let ks = settings.shots
        lines.append("  family           " + ks.map { String(format: "K=%-12d", $0) }.joined())
        for family in state.shotsCurve.keys.sorted(by: { order($0) < order($1) }) {
            let row = ks.map { k in state.shotsCurve[family]!.first { $0.x == Double(k) }.map { String(format: "%.3f ± %.3f  ", $0.dice.mean, $0.dice.halfWidth) } ?? "-              " }
            lines.append("  " + family.padding(toLength: 17, withPad: " ", startingAt: 0) + row.joined())
        }
        lines.append("")
        lines.append("Meta-test Dice against training budget (core-seconds):")
        for family in state.budgetCurve.keys.sorted(by: { order($0) < order($1) }) {
            let points = state.budgetCurve[family]!.map { String(format: "%.0f: %.3f", $0.x, $0.dice.mean) }
            lines.append("  " + family.padding(toLength: 17, withPad: " ", startingAt: 0) + points.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    private func order(_ family: String) -> Int {
        (StudyPlan.families + ["pretrained-maml"]).firstIndex(of: family) ?? 99
    }

    var json: [String: Any] {
        func ci(_ m: MeanCI) -> [String: Any] {
            ["mean": m.mean, "ci95": m.halfWidth.isFinite ? m.halfWidth : 0, "lower": m.lower.isFinite ? m.lower : m.mean,
             "upper": m.upper.isFinite ? m.upper : m.mean, "n": m.count]
        }
        var candidates: [String: Any] = [:]
        for c in state.fingerprint.plan.candidates {
            guard let t = state.tuned[c.name], let trained = state.trained[c.name] else { continue }
            candidates[c.name] = [
                "family": c.family, "grid": c.grid.map(\.description), "validation_dice": t.dice,
                "best_snapshot": t.bestSnapshot, "best_setting": c.grid[t.bestSetting].description,
                "snapshots": trained.fractions.indices.map { ["fraction": trained.fractions[$0], "core_seconds": trained.coreSeconds[$0],
                                                             "task_samples": trained.taskSamples[$0], "steps": trained.steps[$0]] },
            ] as [String: Any]
        }
        var test: [String: Any] = [:]
        for (name, r) in state.test {
            test[name] = ["dice": ci(r.dice), "iou": ci(r.iou), "precision": ci(r.precision), "recall": ci(r.recall),
                          "per_task_dice": r.perTaskDice.mapValues(ci), "instance_dice": r.instanceDice] as [String: Any]
        }
        return [
            "dataset": settings.dataset.name, "dataset_fingerprint": settings.dataset.identity.fingerprint,
            "split": ["meta_train": names(partition.train), "meta_validation": names(partition.validation), "meta_test": names(partition.test)],
            "budget_core_seconds": settings.budget, "step_cost_core_seconds": state.stepCost,
            "shots": settings.mainShots, "query": settings.query, "seed": Int(settings.base.seed),
            "meta_batch": settings.base.metaBatch, "model": ["image_size": settings.base.meta.model.input.height,
                                                             "parameters": (try? MetaLayout(config: settings.base.meta).model.count) ?? 0],
            "candidates": candidates,
            "chosen": state.chosen.mapValues { ["candidate": $0.candidate, "validation_dice": $0.validationDice] as [String: Any] },
            "meta_test": test,
            "paired_differences": state.differences.mapValues(ci),
            "dice_vs_budget": state.budgetCurve.mapValues { $0.map { ["core_seconds": $0.x, "dice": ci($0.dice)] as [String: Any] } },
            "dice_vs_shots": state.shotsCurve.mapValues { $0.map { ["shots": Int($0.x), "dice": ci($0.dice)] as [String: Any] } },
            "stage_seconds": state.stageSeconds,
        ]
    }

    /// Dice against x for each family, with the CI as a band of two thin lines.
    func curve(_ points: [String: [StudyState.Point]], title: String, xLabel: String) -> Canvas {
        var series: [Chart.Series] = []
        for family in points.keys.sorted(by: { order($0) < order($1) }) {
            let color = Self.colors[family] ?? (0, 0, 0)
            let p = points[family]!
            series.append(.init(label: family, points: p.map { ($0.x, $0.dice.mean) }, color: color))
        }
        return Chart.render([Chart.Panel(title: title, series: series, yRange: (0, 1))], xLabel: xLabel, width: 640, height: 400)
    }

    func write(runner: StudyRunner) throws {
        let out = settings.out
        let table = text
        print(table)
        try Data((table + "\n").utf8).write(to: URL(fileURLWithPath: out + "/report.txt"))
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])
            .write(to: URL(fileURLWithPath: out + "/results.json"))
        try curve(state.budgetCurve, title: "meta-test Dice vs training budget", xLabel: "core-seconds").write(to: out + "/dice_vs_budget.png")
        try curve(state.shotsCurve, title: "meta-test Dice vs shots K", xLabel: "K").write(to: out + "/dice_vs_shots.png")
        try IntervalChart.render(state.test.sorted { order($0.key) < order($1.key) }.map { r in
            IntervalChart.Group(label: r.key, color: Self.colors[r.key] ?? (0, 0, 0),
                                intervals: names(partition.test).map { r.value.perTaskDice[$0] ?? MeanCI([]) })
        }, categories: names(partition.test).map { $0.split(separator: "/").dropFirst().joined(separator: "/") },
           title: "meta-test Dice per task (95% CI)").write(to: out + "/per_task.png")
        if let maml = state.chosen["maml"] {
            let c = runner.candidate(maml.candidate)
            let method = try runner.adaptation(c, snapshot: maml.snapshot, setting: c.grid[maml.setting])
            // Before adaptation: the meta-learned initialisation, whichever way it adapts.
            let meta: [Float]
            switch method {
            case .maml(let values, _, _, _): meta = values
            case .fineTune(let start, _): meta = start
            case .none(let parameters): meta = parameters
            }
            let seed = settings.base.seed &+ 2 &* 7919
            let instances = partition.test.map { task in TaskRef(task: task, index: TaskSampler.evaluation(seed: seed, pool: [task], perTask: 1)[0].index) }
            try AdaptationPictures.render(source: source, model: settings.base.meta.model, instances: instances, seed: seed,
                                          before: meta, method: method).write(to: out + "/adaptation.png")
        }
    }
}
