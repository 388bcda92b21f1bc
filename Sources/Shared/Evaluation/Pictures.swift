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

/// Pictures of adaptation on held-out task instances: one row per instance with a support
/// image and its mask, then the first query image with the ground truth (green), the
/// prediction before adaptation (red) and after adaptation (yellow), outlines over the image.
public enum AdaptationPictures {
    public static func render(source: TaskSource, model: ModelSpec, instances: [TaskRef], seed: UInt64,
                              before: [Float], method: MetaTest.Adaptation, zoom: Int = 2) throws -> Canvas {
        let shape = source.imageShape
        let w = shape.width * zoom, h = shape.height * zoom, pad = 6, labelHeight = 14
        let titles = ["support (5 shown 1)", "ground truth", "before adaptation", "after adaptation"]
        let nameWidth = 0
        var canvas = Canvas(width: nameWidth + pad + 4 * (w + pad), height: labelHeight + pad + instances.count * (h + labelHeight + pad) + 20)
        for (i, t) in titles.enumerated() {
            Font5x7.draw(t, on: &canvas, x: nameWidth + pad + i * (w + pad), y: 4)
        }
        let network = try Network<Float>(spec: model, capacity: 5)
        var learners: [MetaConfig: MetaLearner<Float>] = [:]
        let modelCount = network.layout.count
        for (row, ref) in instances.enumerated() {
            let s = try source.sample(task: ref.task, index: ref.index, seed: seed, support: 5, query: 5)
            let plane = shape.plane
            let adapted = try MetaTest.adapt(method, sample: s, network: network, learners: &learners)
            let beforePred = MetaTest.predict(network: network, parameters: Array(before.prefix(modelCount)), images: Array(s.queryImages.prefix(plane)))
            let afterPred = MetaTest.predict(network: network, parameters: adapted, images: Array(s.queryImages.prefix(plane)))
            let y = labelHeight + pad + row * (h + labelHeight + pad)
            Font5x7.draw(source.taskNames[ref.task], on: &canvas, x: pad, y: y)
            let top = y + labelHeight - 4
            let query = Array(s.queryImages.prefix(plane)), truth = Array(s.queryMasks.prefix(plane))
            let panels: [([Float], [([Float], (UInt8, UInt8, UInt8))])] = [
                (Array(s.supportImages.prefix(plane)), [(Array(s.supportMasks.prefix(plane)), (60, 230, 90))]),
                (query, [(truth, (60, 230, 90))]),
                (query, [(truth, (60, 230, 90)), (beforePred, (240, 60, 60))]),
                (query, [(truth, (60, 230, 90)), (afterPred, (250, 220, 40))]),
            ]
            for (i, panel) in panels.enumerated() {
                let x = nameWidth + pad + i * (w + pad)
                canvas.drawImage(panel.0, width: shape.width, height: shape.height, at: x, top, zoom: zoom)
                for (mask, color) in panel.1 {
                    canvas.drawOutline(mask, width: shape.width, height: shape.height, at: x, top, zoom: zoom, color: color)
                }
            }
        }
        let legend = "green: ground truth   red: before adaptation   yellow: after adaptation (5 labelled images)"
        Font5x7.draw(legend, on: &canvas, x: pad, y: canvas.height - 14, color: (60, 60, 60))
        return canvas
    }
}
