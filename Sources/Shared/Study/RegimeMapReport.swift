import Core
import Evaluation
import Foundation

/// A map's results summarised over seeds, task types and instances: per family and cell of
/// (N, K, s) the mean Dice with its hierarchical-bootstrap interval, and the paired difference
/// between the meta-learning family and the best transfer baseline (the better of the two on
/// meta-validation, in each training cell), with fast adaptation (every family at most
/// `fastSteps` steps, the count chosen on meta-validation) and with any number of steps.
public struct RegimeMapResults: Codable, Sendable {
    /// One (N, K) entry of the headline: each family's Dice and MAML's difference.
    public struct Headline: Codable, Sendable {
        public var types: Int?
        public var shots: Int
        public var fast: [Family: HierarchicalBootstrap.Interval]
        public var unrestricted: [Family: HierarchicalBootstrap.Interval]
        public var fastDifference: HierarchicalBootstrap.Interval?
        public var unrestrictedDifference: HierarchicalBootstrap.Interval?
        /// MAML minus scratch, paired, fast and with any number of steps.
        public var fastScratchDifference: HierarchicalBootstrap.Interval?
        public var unrestrictedScratchDifference: HierarchicalBootstrap.Interval?
        /// The step counts chosen on meta-validation for the fast comparison, per family and seed.
        public var fastSteps: [Family: [Int]]
    }

    /// Dice of a family at (N, K, s).
    public struct Entry: Codable, Sendable {
        public var family: Family
        public var types: Int?
        public var shots: Int
        public var steps: Int
        public var dice: HierarchicalBootstrap.Interval
        /// MAML minus the best transfer baseline at the same s (maml entries only).
        public var difference: HierarchicalBootstrap.Interval?
    }

    public struct BudgetEntry: Codable, Sendable {
        public var family: Family
        public var cell: String
        public var steps: Int
        public var coreSeconds: Double
        public var dice: MeanCI
    }

    public var headlines: [Headline]
    /// The same summary on a dataset from outside the universe (`map --test-dataset`): each
    /// cell's trained models with the settings chosen on the universe's meta-validation.
    public var crossDomain: CrossDomainHeadlines?
    public var entries: [Entry]
    public var budget: [BudgetEntry]
    public var seeds: [UInt64]
    public var budgetCoreSeconds: Double
    /// Core-seconds of training and of evaluation the map took, per cell (wall-clock on the
    /// machine's cores).
    public var cellSeconds: [String: Double]

    public struct CrossDomainHeadlines: Codable, Sendable {
        public var dataset: String
        public var headlines: [Headline]
    }
}

struct RegimeMapReport {
    let state: RegimeMapState
    let settings: RegimeMap.Settings

    static let colors: [Family: (UInt8, UInt8, UInt8)] = [
        .maml: (200, 40, 40), .transferMultiClass: (30, 110, 200), .transferHeads: (90, 170, 230), .transfer: (90, 170, 230),
        .scratch: (120, 120, 120), .pretrainedMAML: (220, 140, 20),
    ]

    var transferFamilies: [Family] { [.transferMultiClass, .transferHeads, .transfer] }

    /// The cells done, by N then seed.
    func cells(types: Int?) -> [(RegimeMap.Cell, RegimeMapState.CellResult)] {
        settings.seeds.compactMap { seed in
            let cell = RegimeMap.Cell(types: types, seed: seed)
            return state.cells[cell.name].map { (cell, $0) }
        }
    }

    /// Values grouped by task type (the instance order of `tasks`).
    static func byTask(_ values: [Double], tasks: [String]) -> [[Double]] {
        var groups: [String: [Double]] = [:]
        for (v, t) in zip(values, tasks) { groups[t, default: []].append(v) }
        return groups.keys.sorted().map { groups[$0]! }
    }

    /// The step count a family uses in a cell when it may take any of `allowed`: the best on
    /// meta-validation.
    static func chosenSteps(_ result: RegimeMapState.CellResult, _ family: Family, allowed: [Int]) -> Int? {
        guard let choices = result.choices[family] else { return nil }
        let candidates = allowed.filter { choices[$0] != nil }
        guard !candidates.isEmpty else { return nil }
        return candidates[StudyChoice.firstBest(candidates.map { choices[$0]!.validationDice })]
    }

    /// The transfer family a cell compares MAML with: the best on meta-validation among those
    /// it has, at the given step counts.
    func bestTransfer(_ result: RegimeMapState.CellResult, allowed: [Int]) -> Family? {
        let present = transferFamilies.filter { result.choices[$0] != nil }
        guard !present.isEmpty else { return nil }
        let scores = present.map { f in Self.chosenSteps(result, f, allowed: allowed).flatMap { result.choices[f]?[$0]?.validationDice } ?? -1 }
        return present[StudyChoice.firstBest(scores)]
    }

    var results: RegimeMapResults {
        var headlines: [RegimeMapResults.Headline] = []
        var entries: [RegimeMapResults.Entry] = []
        let fast = settings.steps.filter { $0 <= settings.fastSteps }
        for types in settings.typeCounts {
            let done = cells(types: types)
            guard !done.isEmpty else { continue }
            let families = Set(done.flatMap { $0.1.test.keys }).sorted()
            for k in settings.shots {
                // Each family at each s, and MAML's paired difference with the best transfer baseline at that s.
                for s in settings.steps {
                    for family in families {
                        let values = done.map { _, r in Self.byTask(r.test[family]?[k]?[s] ?? [], tasks: r.instanceTasks[k] ?? []) }
                        var entry = RegimeMapResults.Entry(family: family, types: types, shots: k, steps: s,
                                                           dice: HierarchicalBootstrap.interval(values), difference: nil)
                        if family == .maml {
                            let diffs = done.map { _, r -> [[Double]] in
                                guard let other = bestTransfer(r, allowed: [s]), let a = r.test[.maml]?[k]?[s], let b = r.test[other]?[k]?[s] else { return [] }
                                return Self.byTask(zip(a, b).map { $0 - $1 }, tasks: r.instanceTasks[k] ?? [])
                            }
                            entry.difference = diffs.allSatisfy(\.isEmpty) ? nil : HierarchicalBootstrap.interval(diffs)
                        }
                        entries.append(entry)
                    }
                }
                // The headline: fast adaptation and any number of steps, each s chosen on meta-validation per cell.
                func summary(_ allowed: [Int]) -> ([Family: HierarchicalBootstrap.Interval], HierarchicalBootstrap.Interval?,
                                                   HierarchicalBootstrap.Interval?, [Family: [Int]]) {
                    var dice: [Family: HierarchicalBootstrap.Interval] = [:], steps: [Family: [Int]] = [:]
                    for family in families {
                        let values = done.map { _, r -> [[Double]] in
                            guard let s = Self.chosenSteps(r, family, allowed: allowed) else { return [] }
                            steps[family, default: []].append(s)
                            return Self.byTask(r.test[family]?[k]?[s] ?? [], tasks: r.instanceTasks[k] ?? [])
                        }
                        dice[family] = HierarchicalBootstrap.interval(values)
                    }
                    func difference(against other: (RegimeMapState.CellResult) -> Family?) -> HierarchicalBootstrap.Interval? {
                        let diffs = done.map { _, r -> [[Double]] in
                            guard let other = other(r), let sm = Self.chosenSteps(r, .maml, allowed: allowed),
                                  let so = Self.chosenSteps(r, other, allowed: allowed),
                                  let a = r.test[.maml]?[k]?[sm], let b = r.test[other]?[k]?[so] else { return [] }
                            return Self.byTask(zip(a, b).map { $0 - $1 }, tasks: r.instanceTasks[k] ?? [])
                        }
                        return diffs.allSatisfy(\.isEmpty) ? nil : HierarchicalBootstrap.interval(diffs)
                    }
                    return (dice, difference { bestTransfer($0, allowed: allowed) }, difference { $0.choices[.scratch] == nil ? nil : .scratch }, steps)
                }
                let f = summary(fast), u = summary(settings.steps)
                headlines.append(.init(types: types, shots: k, fast: f.0, unrestricted: u.0, fastDifference: f.1, unrestrictedDifference: u.1,
                                       fastScratchDifference: f.2, unrestrictedScratchDifference: u.2, fastSteps: f.3))
            }
        }
        var budget: [RegimeMapResults.BudgetEntry] = []
        // Every asked cell that has a curve, whichever run measured it.
        for cell in settings.cells {
            guard let r = state.cells[cell.name], let curves = r.budget else { continue }
            for (family, points) in curves.sorted(by: { $0.key < $1.key }) {
                for p in points {
                    for (s, dice) in p.dice.sorted(by: { $0.key < $1.key }) {
                        budget.append(.init(family: family, cell: cell.name, steps: s, coreSeconds: p.coreSeconds, dice: MeanCI(dice)))
                    }
                }
                // The final snapshot is the map's own test at the main K.
                let spent = r.spent.filter { name, _ in settings.plan.candidates.contains { $0.name == name && $0.family == family } }.values.first
                for s in [settings.fastSteps, settings.steps.max() ?? 0] where settings.steps.contains(s) {
                    if let dice = r.test[family]?[settings.mainShots]?[s], let spent {
                        budget.append(.init(family: family, cell: cell.name, steps: s, coreSeconds: spent.coreSeconds, dice: MeanCI(dice)))
                    }
                }
            }
        }
        return RegimeMapResults(headlines: headlines, crossDomain: crossDomainHeadlines, entries: entries, budget: budget, seeds: settings.seeds,
                                budgetCoreSeconds: settings.budget, cellSeconds: state.seconds)
    }

    /// The headlines on the cross-domain dataset: the same summary over the cells that have
    /// met it, their test Dice being the cross-domain one.
    var crossDomainHeadlines: RegimeMapResults.CrossDomainHeadlines? {
        guard let results = state.crossDomain, let name = results.values.first?.dataset else { return nil }
        var derived = state
        derived.crossDomain = nil
        derived.cells = [:]
        derived.seconds = [:]
        for (cell, r) in state.cells {
            guard let c = results[cell] else { continue }
            var result = r
            result.test = c.test
            result.instanceTasks = c.instanceTasks
            result.budget = nil
            derived.cells[cell] = result
        }
        var s = settings
        s.shots = Set(results.values.flatMap { $0.instanceTasks.keys }).sorted()
        return .init(dataset: name, headlines: RegimeMapReport(state: derived, settings: s).results.headlines)
    }

    static func typesName(_ types: Int?) -> String { types.map(String.init) ?? "unbounded" }

    static func interval(_ i: HierarchicalBootstrap.Interval?) -> String {
        guard let i, i.mean.isFinite else { return "-" }
        return String(format: "%.3f [%.3f, %.3f]", i.mean, i.lower, i.upper)
    }

    static func difference(_ i: HierarchicalBootstrap.Interval?) -> String {
        guard let i, i.mean.isFinite else { return "-" }
        return String(format: "%+.3f [%+.3f, %+.3f] %@", i.mean, i.lower, i.upper, i.verdict)
    }

    /// Where meta-learning is above, level with and below the best transfer baseline (and, on
    /// the cross-domain dataset, scratch): the report's first lines.
    func summary(_ r: RegimeMapResults) -> [String] {
        func cells(_ headlines: [RegimeMapResults.Headline], _ difference: (RegimeMapResults.Headline) -> HierarchicalBootstrap.Interval?) -> String {
            var groups: [String: [String]] = [:]
            for h in headlines {
                guard let d = difference(h), d.mean.isFinite else { continue }
                groups[d.verdict, default: []].append("N=\(Self.typesName(h.types)) K=\(h.shots)")
            }
            return ["above zero", "includes zero", "below zero"].compactMap { v in
                groups[v].map { "\(v == "includes zero" ? "level" : v == "above zero" ? "above" : "below") at \($0.joined(separator: ", "))" }
            }.joined(separator: "; ")
        }
        var lines = [
            "Meta-learning against the best transfer baseline on held-out task types, paired 95% intervals:",
            "  fast adaptation (s <= \(settings.fastSteps)): " + cells(r.headlines) { $0.fastDifference },
            "  any number of steps: " + cells(r.headlines) { $0.unrestrictedDifference },
        ]
        if let cross = r.crossDomain {
            lines.append("On \(cross.dataset) (cross-domain), against the best transfer baseline: fast " + cells(cross.headlines) { $0.fastDifference }
                + "; any s " + cells(cross.headlines) { $0.unrestrictedDifference })
            lines.append("On \(cross.dataset), against scratch: fast " + cells(cross.headlines) { $0.fastScratchDifference }
                + "; any s " + cells(cross.headlines) { $0.unrestrictedScratchDifference })
        }
        return lines + [""]
    }

    func text(_ r: RegimeMapResults) -> String {
        var lines = summary(r) + [
            "Regime map on the task universe: \(settings.seeds.count) training seed(s), \(Int(settings.budget)) core-seconds of training per candidate, held-out task types (meta-test rules never trained on)",
            "Dice: mean over seeds, task types and instances, 95% interval by the hierarchical bootstrap; maml - transfer*: paired, transfer* the better transfer baseline on meta-validation",
            "",
        ]
        for (label, fast) in [("fast adaptation (every family at most \(settings.fastSteps) steps, the count chosen on meta-validation)", true),
                              ("any number of steps (chosen on meta-validation)", false)] {
            lines.append("Held-out Dice, \(label):")
            let families = Set(r.headlines.flatMap { (fast ? $0.fast : $0.unrestricted).keys }).sorted()
            lines.append("  N          K   " + families.map { $0.rawValue.padding(toLength: 26, withPad: " ", startingAt: 0) }.joined() + "maml - transfer*")
            for h in r.headlines {
                let d = fast ? h.fast : h.unrestricted
                lines.append("  " + Self.typesName(h.types).padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%3d  ", h.shots)
                    + families.map { Self.interval(d[$0]).padding(toLength: 26, withPad: " ", startingAt: 0) }.joined()
                    + Self.difference(fast ? h.fastDifference : h.unrestrictedDifference))
            }
            lines.append("")
        }
        if let cross = r.crossDomain {
            lines.append("Cross-domain: \(cross.dataset), the same trained models and the settings chosen on the universe's meta-validation:")
            let families = Set(cross.headlines.flatMap { $0.fast.keys }).sorted()
            lines.append("  N          K   fast/any  " + families.map { $0.rawValue.padding(toLength: 26, withPad: " ", startingAt: 0) }.joined()
                + "maml - transfer*".padding(toLength: 40, withPad: " ", startingAt: 0) + "maml - scratch")
            for h in cross.headlines {
                for fast in [true, false] {
                    let d = fast ? h.fast : h.unrestricted
                    lines.append("  " + Self.typesName(h.types).padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%3d  ", h.shots)
                        + (fast ? "fast      " : "any       ")
                        + families.map { Self.interval(d[$0]).padding(toLength: 26, withPad: " ", startingAt: 0) }.joined()
                        + Self.difference(fast ? h.fastDifference : h.unrestrictedDifference).padding(toLength: 40, withPad: " ", startingAt: 0)
                        + Self.difference(fast ? h.fastScratchDifference : h.unrestrictedScratchDifference))
                }
            }
            lines.append("")
        }
        lines.append("Where meta-learning wins (maml - transfer* above zero):")
        let wins = r.entries.filter { $0.family == .maml && ($0.difference?.lower ?? 0) > 0 }
        let losses = r.entries.filter { $0.family == .maml && ($0.difference?.upper ?? 0) < 0 }
        lines.append("  above zero at \(wins.count) of \(r.entries.filter { $0.family == .maml && $0.difference != nil }.count) (N, K, s) cells: "
            + wins.prefix(40).map { "N=\(Self.typesName($0.types)) K=\($0.shots) s=\($0.steps)" }.joined(separator: ", "))
        lines.append("  below zero at \(losses.count): " + losses.prefix(40).map { "N=\(Self.typesName($0.types)) K=\($0.shots) s=\($0.steps)" }.joined(separator: ", "))
        if !r.budget.isEmpty {
            lines.append("")
            lines.append("Dice against training budget (K = \(settings.mainShots), one seed):")
            for cell in Set(r.budget.map(\.cell)).sorted() {
                for s in Set(r.budget.map(\.steps)).sorted() {
                    for family in Set(r.budget.map(\.family)).sorted() {
                        let points = r.budget.filter { $0.cell == cell && $0.steps == s && $0.family == family }.sorted { $0.coreSeconds < $1.coreSeconds }
                        guard !points.isEmpty else { continue }
                        lines.append("  \(cell) s=\(s) \(family.rawValue): " + points.map { String(format: "%.0f: %.3f", $0.coreSeconds, $0.dice.mean) }.joined(separator: ", "))
                    }
                }
            }
        }
        lines.append("")
        lines.append("Cost: " + String(format: "%.1f", r.cellSeconds.values.reduce(0, +) / 3600) + " hours of wall-clock over \(r.cellSeconds.count) cell(s)")
        return lines.joined(separator: "\n")
    }

    /// The map figure: a panel per (K, N), Dice against s for each family.
    func mapFigure(_ r: RegimeMapResults) -> SVG {
        var panels: [PanelChart.Panel] = []
        for k in settings.shots {
            for types in settings.typeCounts {
                let entries = r.entries.filter { $0.shots == k && $0.types == types }
                guard !entries.isEmpty else { continue }
                let series = Set(entries.map(\.family)).sorted().map { family in
                    PanelChart.Series(label: family.rawValue, color: Self.colors[family] ?? (0, 0, 0),
                                      points: entries.filter { $0.family == family }.map {
                                          .init(x: Double($0.steps), y: $0.dice.mean, lower: $0.dice.lower, upper: $0.dice.upper)
                                      })
                }
                panels.append(.init(title: "N = \(Self.typesName(types)), K = \(k)", series: series))
            }
        }
        var layout = PanelChart.Layout(columns: max(1, settings.typeCounts.count), xLabel: "adaptation steps s", yLabel: "held-out Dice")
        layout.xScale = .ordinal(settings.steps.map(Double.init))
        layout.panelWidth = 200
        layout.panelHeight = 150
        return PanelChart.render(panels, title: "Held-out Dice against adaptation steps, by task types N (columns) and shots K (rows)", layout: layout)
    }

    /// MAML minus the best transfer baseline against N, fast and unrestricted, a panel per K.
    func differenceFigure(_ r: RegimeMapResults) -> SVG {
        let order = settings.typeCounts.indices.map(Double.init)
        let panels = settings.shots.map { k in
            PanelChart.Panel(title: "K = \(k)", series: [(true, "fast (s ≤ \(settings.fastSteps))", (200, 40, 40)), (false, "any s", (120, 60, 160))].map { fast, label, color in
                PanelChart.Series(label: label, color: color, points: r.headlines.filter { $0.shots == k }.compactMap { h in
                    guard let d = fast ? h.fastDifference : h.unrestrictedDifference, let i = settings.typeCounts.firstIndex(of: h.types) else { return nil }
                    return .init(x: Double(i), y: d.mean, lower: d.lower, upper: d.upper)
                })
            })
        }
        var layout = PanelChart.Layout(columns: settings.shots.count, xLabel: "meta-training task types N", yLabel: "maml - transfer*")
        layout.xScale = .ordinal(order)
        layout.tickLabels = Dictionary(uniqueKeysWithValues: settings.typeCounts.enumerated().map { (Double($0.offset), $0.element.map(String.init) ?? "∞") })
        layout.yRange = -0.3...0.3
        layout.reference = 0
        layout.panelWidth = 220
        return PanelChart.render(panels, title: "Meta-learning minus the best transfer baseline, paired, 95% interval over seeds, types and instances", layout: layout)
    }

    /// Writes report.txt, results.json, the figures and index.html (and prints the report
    /// when `printing`).
    func write(printing: Bool = true) throws {
        let r = results
        let text = text(r)
        if printing { print(text) }
        let out = settings.out
        try TextFile.write(text, to: out + "/report.txt")
        try JSONFile.write(r, to: out + "/results.json")
        let map = mapFigure(r), difference = differenceFigure(r)
        try map.write(to: out + "/map.svg")
        try difference.write(to: out + "/difference.svg")
        var html = HTMLReport(title: "MedMAML regime map")
        html.preformatted(text)
        html.figure(difference, caption: "Meta-learning minus the best transfer baseline (chosen on meta-validation), paired on the same held-out instances.")
        html.figure(map, caption: "Held-out Dice of every family at every adaptation step count s, each family's setting at each s chosen on meta-validation.")
        try html.write(to: out + "/index.html")
    }
}
