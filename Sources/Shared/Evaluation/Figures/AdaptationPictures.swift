import Core
import Datasets
import Engine
import Foundation

/// Pictures of adaptation on held-out task instances: one row per instance with a support
/// image and its mask, then the first query image with the ground truth (green), the
/// prediction before adaptation (red) and after adaptation (yellow), outlines over the image.
public enum AdaptationPictures {
    public static func render(source: TaskSource, model: ModelSpec, instances: [TaskRef], seed: UInt64,
                              before: [Float], method: MetaTest.Adaptation, zoom: Int = 2) throws -> Canvas {
        let shape = source.imageShape
        let titles = ["support (1 of 5)", "ground truth", "before adaptation", "after adaptation"]
        // Every column at least as wide as its title, so that no two titles touch.
        let widest = titles.map { Font5x7.width($0) }.max() ?? 0
        let zoom = max(zoom, (widest + 8 + shape.width - 1) / shape.width)
        let w = shape.width * zoom, h = shape.height * zoom, pad = 6, labelHeight = 14
        let nameWidth = 0
        var canvas = Canvas(width: nameWidth + pad + 4 * (w + pad), height: labelHeight + pad + instances.count * (h + labelHeight + pad) + 20)
        for (i, t) in titles.enumerated() {
            Font5x7.draw(t, on: &canvas, x: nameWidth + pad + i * (w + pad), y: 4)
        }
        let scorer = try MetaTest.Scorer(model: model, capacity: 5)
        for (row, ref) in instances.enumerated() {
            let s = try source.sample(task: ref.task, index: ref.index, seed: seed, support: 5, query: 5)
            let plane = shape.plane
            let adapted = try scorer.adapt(method, sample: s)
            let beforePred = scorer.predict(parameters: Array(before.prefix(scorer.network.layout.count)), images: Array(s.queryImages.prefix(plane)))
            let afterPred = scorer.predict(parameters: adapted, images: Array(s.queryImages.prefix(plane)))
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
