import Datasets

/// Line charts of training curves: each panel a title, axes with tick labels, and series.
public enum Chart {
    public struct Series: Sendable {
        public var label: String
        public var points: [(x: Double, y: Double)]
        public var color: (UInt8, UInt8, UInt8)
        public init(label: String, points: [(x: Double, y: Double)], color: (UInt8, UInt8, UInt8)) {
            self.label = label
            self.points = points
            self.color = color
        }
    }

    public struct Panel: Sendable {
        public var title: String
        public var series: [Series]
        public var yRange: (Double, Double)?
        public init(title: String, series: [Series], yRange: (Double, Double)? = nil) {
            self.title = title
            self.series = series
            self.yRange = yRange
        }
    }

    /// Panels side by side, each `width` x `height` pixels, x axis labelled `xLabel`.
    public static func render(_ panels: [Panel], xLabel: String, width: Int = 420, height: Int = 300) -> Canvas {
        var canvas = Canvas(width: width * panels.count, height: height)
        for (i, panel) in panels.enumerated() {
            draw(panel, on: &canvas, x0: i * width, width: width, height: height, xLabel: xLabel)
        }
        return canvas
    }

    static func label(_ v: Double, integer: Bool = false) -> String {
        if v == 0 { return "0" }
        if integer { return String(Int(v.rounded())) }
        if abs(v) >= 100 { return String(Int(v.rounded())) }
        if abs(v) >= 1 { return String(format: "%.1f", v) }
        return String(format: "%.2f", v)
    }

    static func draw(_ panel: Panel, on canvas: inout Canvas, x0: Int, width: Int, height: Int, xLabel: String) {
        let left = x0 + 52, right = x0 + width - 14, top = 34, bottom = height - 52
        Font5x7.draw(panel.title, on: &canvas, x: x0 + (width - Font5x7.width(panel.title, scale: 2)) / 2, y: 8, scale: 2)
        let all = panel.series.flatMap(\.points)
        guard !all.isEmpty else { return }
        let xs = all.map(\.x), ys = all.map(\.y).filter(\.isFinite)
        let xmin = xs.min()!, xmax = max(xs.max()!, xmin + 1)
        var (ymin, ymax) = panel.yRange ?? (ys.min() ?? 0, ys.max() ?? 1)
        if ymax - ymin < 1e-9 { ymax = ymin + 1 }
        let pad = panel.yRange == nil ? 0.05 * (ymax - ymin) : 0
        ymin -= pad
        ymax += pad
        func px(_ x: Double) -> Int { left + Int(Double(right - left) * (x - xmin) / (xmax - xmin)) }
        func py(_ y: Double) -> Int { bottom - Int(Double(bottom - top) * (y - ymin) / (ymax - ymin)) }
        let grid: (UInt8, UInt8, UInt8) = (225, 225, 225), axis: (UInt8, UInt8, UInt8) = (90, 90, 90)
        for k in 0...4 {
            let yv = ymin + (ymax - ymin) * Double(k) / 4, xv = xmin + (xmax - xmin) * Double(k) / 4
            canvas.line(left, py(yv), right, py(yv), color: grid)
            canvas.line(px(xv), top, px(xv), bottom, color: grid)
            let yl = label(yv), xl = label(xv, integer: xmax - xmin >= 8)
            Font5x7.draw(yl, on: &canvas, x: left - 6 - Font5x7.width(yl), y: py(yv) - 3, color: axis)
            Font5x7.draw(xl, on: &canvas, x: px(xv) - Font5x7.width(xl) / 2, y: bottom + 6, color: axis)
        }
        canvas.rect(left, top, right - left, bottom - top, color: axis)
        Font5x7.draw(xLabel, on: &canvas, x: (left + right - Font5x7.width(xLabel)) / 2, y: bottom + 20, color: axis)
        for s in panel.series {
            let pts = s.points.filter { $0.y.isFinite }
            for (a, b) in zip(pts, pts.dropFirst()) { canvas.line(px(a.x), py(a.y), px(b.x), py(b.y), color: s.color, thickness: 2) }
            if pts.count == 1 { canvas.line(px(pts[0].x) - 2, py(pts[0].y), px(pts[0].x) + 2, py(pts[0].y), color: s.color, thickness: 3) }
        }
        var ly = bottom + 34
        var lx = left
        for s in panel.series {
            canvas.line(lx, ly + 3, lx + 14, ly + 3, color: s.color, thickness: 2)
            Font5x7.draw(s.label, on: &canvas, x: lx + 18, y: ly, color: (40, 40, 40))
            lx += 30 + Font5x7.width(s.label)
            if lx > right - 60 { lx = left; ly += 10 }
        }
    }
}
