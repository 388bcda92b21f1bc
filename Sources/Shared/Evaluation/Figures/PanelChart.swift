/// Line charts in SVG: a grid of panels sharing one legend, each panel a title, a y axis
/// (Dice, 0 to 1 unless given), an x axis with labelled ticks, and series of points with
/// optional intervals drawn as bars. Every label's box is placed so that no two overlap
/// (tick labels are thinned when they would), which a browser test checks.
public enum PanelChart {
    public struct Point: Sendable {
        public var x: Double
        public var y: Double
        public var lower: Double?
        public var upper: Double?
        public init(x: Double, y: Double, lower: Double? = nil, upper: Double? = nil) {
            self.x = x
            self.y = y
            self.lower = lower
            self.upper = upper
        }
    }

    public struct Series: Sendable {
        public var label: String
        public var color: (UInt8, UInt8, UInt8)
        public var points: [Point]
        public var dashed = false
        public init(label: String, color: (UInt8, UInt8, UInt8), points: [Point], dashed: Bool = false) {
            self.label = label
            self.color = color
            self.points = points
            self.dashed = dashed
        }
    }

    public struct Panel: Sendable {
        public var title: String
        public var series: [Series]
        public init(title: String, series: [Series]) {
            self.title = title
            self.series = series
        }
    }

    /// How x values map to the axis.
    public enum XScale: Sendable {
        /// Proportional.
        case linear
        /// The given values at equal spacing, in order (for step counts 0, 1, 2, 5, ... 100).
        case ordinal([Double])
    }

    public struct Layout: Sendable {
        public var columns: Int
        public var panelWidth = 260.0
        public var panelHeight = 200.0
        public var yRange: ClosedRange<Double> = 0...1
        public var xLabel: String
        public var yLabel: String
        public var xScale: XScale = .linear
        /// A horizontal reference line (for example 0 for differences).
        public var reference: Double?
        /// Labels of x values that are not their numbers (an ordinal axis of names).
        public var tickLabels: [Double: String] = [:]
        public init(columns: Int, xLabel: String, yLabel: String) {
            self.columns = columns
            self.xLabel = xLabel
            self.yLabel = yLabel
        }
    }

    public static func render(_ panels: [Panel], title: String, layout: Layout) -> SVG {
        let columns = max(1, min(layout.columns, panels.count))
        let rows = (panels.count + columns - 1) / columns
        let left = 58.0, right = 16.0, top = 34.0, bottom = 44.0
        let cellW = layout.panelWidth + left + right, cellH = layout.panelHeight + top + bottom
        // The legend: one row (wrapped) above the panels.
        var legendLabels: [(String, (UInt8, UInt8, UInt8), Bool)] = []
        for p in panels { for s in p.series where !legendLabels.contains(where: { $0.0 == s.label }) { legendLabels.append((s.label, s.color, s.dashed)) } }
        let width = max(cellW * Double(columns), 400, SVG.textWidth(title, size: 15) + 24)
        var legendRows: [[(String, (UInt8, UInt8, UInt8), Bool)]] = [[]]
        var used = 12.0
        for l in legendLabels {
            let w = 34 + SVG.textWidth(l.0) + 18
            if used + w > width - 12, !(legendRows.last?.isEmpty ?? true) { legendRows.append([]); used = 12 }
            legendRows[legendRows.count - 1].append(l)
            used += w
        }
        let header = 36.0 + 20 * Double(legendRows.count)
        var svg = SVG(width: width, height: header + cellH * Double(rows))
        svg.text(title, x: 12, y: 22, size: 15, bold: true)
        for (r, row) in legendRows.enumerated() {
            var x = 12.0
            let y = 44.0 + 20 * Double(r)
            for (label, color, dashed) in row {
                svg.line(x, y - 4, x + 26, y - 4, color: color, width: 2.5, dashed: dashed)
                svg.text(label, x: x + 32, y: y)
                x += 34 + SVG.textWidth(label) + 18
            }
        }
        for (i, panel) in panels.enumerated() {
            draw(panel, in: &svg, x0: Double(i % columns) * cellW + left, y0: header + Double(i / columns) * cellH + top, layout: layout)
        }
        return svg
    }

    static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
        return abs(v) >= 10 ? String(format: "%.0f", v) : String(format: "%.2f", v)
    }

    private static func draw(_ panel: Panel, in svg: inout SVG, x0: Double, y0: Double, layout: Layout) {
        let w = layout.panelWidth, h = layout.panelHeight
        let axis: (UInt8, UInt8, UInt8) = (90, 90, 90), grid: (UInt8, UInt8, UInt8) = (228, 228, 228)
        svg.text(panel.title, x: x0 + w / 2, y: y0 - 12, size: 13, anchor: .middle, bold: true)
        let all = panel.series.flatMap(\.points)
        let xs: [Double]
        switch layout.xScale {
        case .ordinal(let values): xs = values
        case .linear: xs = Array(Set(all.map(\.x))).sorted()
        }
        let lo = layout.yRange.lowerBound, hi = layout.yRange.upperBound
        func py(_ y: Double) -> Double { y0 + h - h * (min(max(y, lo), hi) - lo) / (hi - lo) }
        func px(_ x: Double) -> Double {
            switch layout.xScale {
            case .ordinal(let values):
                let i = values.firstIndex(of: x) ?? 0
                return x0 + w * (values.count > 1 ? Double(i) / Double(values.count - 1) : 0.5)
            case .linear:
                let a = xs.first ?? 0, b = max(xs.last ?? 1, a + 1e-9)
                return x0 + w * (x - a) / (b - a)
            }
        }
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            svg.line(x0, py(v), x0 + w, py(v), color: grid)
            svg.text(label(v), x: x0 - 6, y: py(v) + 4, size: 11, anchor: .end, color: axis)
        }
        if let reference = layout.reference { svg.line(x0, py(reference), x0 + w, py(reference), color: (120, 120, 120), width: 1.2, dashed: true) }
        svg.rect(x0, y0, w, h, fill: nil, stroke: axis)
        // Tick labels, thinned so that neighbours never touch.
        var lastRight = -Double.infinity
        for x in xs {
            let text = layout.tickLabels[x] ?? label(x), half = SVG.textWidth(text, size: 11) / 2
            guard px(x) - half > lastRight + 4 else { continue }
            svg.line(px(x), y0 + h, px(x), y0 + h + 4, color: axis)
            svg.text(text, x: px(x), y: y0 + h + 17, size: 11, anchor: .middle, color: axis)
            lastRight = px(x) + half
        }
        svg.text(layout.xLabel, x: x0 + w / 2, y: y0 + h + 35, size: 11, anchor: .middle, color: axis)
        svg.text(layout.yLabel, x: x0 - 44, y: y0 + h / 2, size: 11, anchor: .middle, color: axis, rotate: true)
        let offsets = panel.series.count > 1 ? panel.series.indices.map { (Double($0) - Double(panel.series.count - 1) / 2) * 3 } : [0]
        for (si, s) in panel.series.enumerated() {
            let pts = s.points.filter { $0.y.isFinite }.sorted { $0.x < $1.x }
            svg.polyline(pts.map { (px($0.x) + offsets[si], py($0.y)) }, color: s.color, width: 2)
            for p in pts {
                if let l = p.lower, let u = p.upper, l.isFinite, u.isFinite {
                    svg.line(px(p.x) + offsets[si], py(l), px(p.x) + offsets[si], py(u), color: s.color, width: 1.2)
                }
                svg.circle(px(p.x) + offsets[si], py(p.y), r: 2.6, fill: s.color)
            }
        }
    }
}
