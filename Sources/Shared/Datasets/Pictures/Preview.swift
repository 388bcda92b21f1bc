/// Pictures of task samples for people to look at.
public enum Preview {
    /// One row per task: `count` images of a sample with their masks outlined in green
    /// (support first, then query, separated by a gap). Returns the canvas.
    public static func tasks(_ source: TaskSource, tasks: [Int], support: Int, query: Int, seed: UInt64,
                             zoom: Int = 2) throws(DataError) -> Canvas {
        let shape = source.imageShape
        let w = shape.width * zoom, h = shape.height * zoom, pad = 4, gap = 12
        let columns = support + query
        let canvasWidth = pad + columns * (w + pad) + (query > 0 ? gap : 0)
        var canvas = Canvas(width: canvasWidth, height: pad + tasks.count * (h + pad), background: (32, 32, 40))
        for (row, task) in tasks.enumerated() {
            let s = try source.sample(task: task, index: 0, seed: seed, support: support, query: query)
            for c in 0..<columns {
                let isQuery = c >= support
                let k = isQuery ? c - support : c
                let plane = shape.plane
                let image = Array((isQuery ? s.queryImages : s.supportImages)[(k * shape.count)..<(k * shape.count + plane)])
                let mask = Array((isQuery ? s.queryMasks : s.supportMasks)[(k * plane)..<((k + 1) * plane)])
                let x = pad + c * (w + pad) + (isQuery ? gap : 0), y = pad + row * (h + pad)
                canvas.drawImage(image, width: shape.width, height: shape.height, at: x, y, zoom: zoom)
                canvas.drawOutline(mask, width: shape.width, height: shape.height, at: x, y, zoom: zoom, color: (60, 230, 90))
            }
        }
        return canvas
    }
}
