import Datasets
import Foundation

/// The training-curves figure: meta-loss, query Dice and held-out Dice against step, from
/// `metrics.jsonl` files (second order, and optionally first order for comparison).
public enum Curves {
    public static func points(_ path: String, key: String) -> [(x: Double, y: Double)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = (obj["step"] as? NSNumber)?.doubleValue, let y = (obj[key] as? NSNumber)?.doubleValue
            else { return nil }
            return (step, y)
        }
    }

    /// Smooths a noisy per-step series with a trailing moving average.
    static func smooth(_ p: [(x: Double, y: Double)], window: Int) -> [(x: Double, y: Double)] {
        p.indices.map { i in
            let lo = max(0, i - window + 1)
            return (p[i].x, p[lo...i].map(\.y).reduce(0, +) / Double(i - lo + 1))
        }
    }

    public static func render(second: String, first: String?) -> Canvas {
        let blue: (UInt8, UInt8, UInt8) = (40, 90, 200), orange: (UInt8, UInt8, UInt8) = (230, 120, 30)
        func series(_ key: String, smoothing: Int) -> [Chart.Series] {
            var s = [Chart.Series(label: "second order", points: smooth(points(second, key: key), window: smoothing), color: blue)]
            if let first { s.append(Chart.Series(label: "first order", points: smooth(points(first, key: key), window: smoothing), color: orange)) }
            return s
        }
        return Chart.render([
            Chart.Panel(title: "meta-loss", series: series("meta_loss", smoothing: 10)),
            Chart.Panel(title: "query Dice (train)", series: series("query_dice", smoothing: 10), yRange: (0, 1)),
            Chart.Panel(title: "held-out Dice", series: series("heldout_dice", smoothing: 1), yRange: (0, 1)),
        ], xLabel: "outer step")
    }
}
