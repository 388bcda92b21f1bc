import Core
import Foundation

/// What `evaluate` reports: each method's scores on the same task instances, as a table and
/// as JSON (two renderings of the same value).
public struct EvaluationReport: Codable, Sendable {
    /// One method's means with 95% CIs over instances.
    public struct Method: Codable, Sendable {
        public var name: String
        public var dice: MeanCI
        public var iou: MeanCI
        public var precision: MeanCI
        public var recall: MeanCI
        public var hd95: MeanCI
        public var hd95Unit: String
        public var perTaskDice: [String: MeanCI]

        public init(_ r: MetaTest.MethodResult) {
            name = r.name
            dice = r.dice
            iou = r.iou
            precision = r.precision
            recall = r.recall
            hd95 = r.hd95
            hd95Unit = r.hd95Unit
            perTaskDice = r.perTaskDice
        }
    }

    public var title: String
    public var checkpoint: String
    public var dataset: String
    public var shots: Int
    public var tasks: [String]
    public var methods: [Method]
    /// How the baselines' settings were chosen, when they ran.
    public var baselineNote: String?
    /// The effective configuration of the command.
    public var runFile: String?

    public init(title: String, checkpoint: String, dataset: String, shots: Int, tasks: [String], results: [MetaTest.MethodResult],
                baselineNote: String? = nil, runFile: String? = nil) {
        self.title = title
        self.checkpoint = checkpoint
        self.dataset = dataset
        self.shots = shots
        self.tasks = tasks
        methods = results.map(Method.init)
        self.baselineNote = baselineNote
        self.runFile = runFile
    }

    /// The table: one line per method, then per-task Dice where there are several tasks.
    public var text: String {
        let unit = methods.first?.hd95Unit ?? "px"
        var lines = [title, "method        Dice (95% CI)        IoU     precision  recall   HD95 (\(unit))   instances"]
        for r in methods {
            lines.append(r.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: "%.3f ± %.3f        %.3f   %.3f      %.3f    %6.2f       %d",
                         r.dice.mean, r.dice.halfWidth, r.iou.mean, r.precision.mean, r.recall.mean, r.hd95.mean, r.dice.count))
        }
        for r in methods where r.perTaskDice.count > 1 {
            lines.append("\nper task (\(r.name)):")
            for (name, ci) in r.perTaskDice.sorted(by: { $0.key < $1.key }) { lines.append("  " + name.padding(toLength: 44, withPad: " ", startingAt: 0) + "\(ci)") }
        }
        if let baselineNote { lines.append("\n" + baselineNote) }
        return lines.joined(separator: "\n")
    }
}
