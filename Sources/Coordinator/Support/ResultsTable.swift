import Evaluation
import Foundation

/// The results table and results.json.
enum ResultsTable {
    static func text(_ results: [MetaTest.MethodResult], title: String) -> String {
        let unit = results.first?.hd95Unit ?? "px"
        var lines = [title, "method        Dice (95% CI)        IoU     precision  recall   HD95 (\(unit))   instances"]
        for r in results {
            lines.append(r.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: "%.3f ± %.3f        %.3f   %.3f      %.3f    %6.2f       %d",
                         r.dice.mean, r.dice.halfWidth, r.iou.mean, r.precision.mean, r.recall.mean, r.hd95.mean, r.dice.count))
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ results: [MetaTest.MethodResult], extra: [String: Any]) throws -> Data {
        var methods: [String: Any] = [:]
        for r in results {
            methods[r.name] = [
                "dice_mean": r.dice.mean, "dice_ci95": r.dice.halfWidth, "instances": r.dice.count,
                "iou_mean": r.iou.mean, "precision_mean": r.precision.mean, "recall_mean": r.recall.mean,
                "hd95_mean": r.hd95.mean.isFinite ? r.hd95.mean : NSNull(), "hd95_unit": r.hd95Unit,
                "hd95_instances": r.hd95.count,
                "per_task_dice": r.perTaskDice.mapValues { ["mean": $0.mean, "ci95": $0.halfWidth.isFinite ? $0.halfWidth : 0, "instances": $0.count] },
            ] as [String: Any]
        }
        var object = extra
        object["methods"] = methods
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    }
}
