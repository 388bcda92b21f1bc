/// Text and line charts on a Canvas, with a built-in 5x7 bitmap font (no font library is
/// available on a bare server): enough for axis labels, titles and a results table.
public enum Font5x7 {
    static let glyphs: [Character: [UInt8]] = [
        "#": [10,10,31,10,31,10,10],
        "%": [24,25,2,4,8,19,3],
        "(": [2,4,8,8,8,4,2],
        ")": [8,4,2,2,2,4,8],
        "+": [0,4,4,31,4,4,0],
        ",": [0,0,0,0,12,4,8],
        "-": [0,0,0,31,0,0,0],
        ".": [0,0,0,0,0,12,12],
        "/": [1,2,2,4,8,8,16],
        "0": [14,17,19,21,25,17,14],
        "1": [4,12,4,4,4,4,14],
        "2": [14,17,1,2,4,8,31],
        "3": [30,1,1,14,1,1,30],
        "4": [2,6,10,18,31,2,2],
        "5": [31,16,30,1,1,17,14],
        "6": [6,8,16,30,17,17,14],
        "7": [31,1,2,4,8,8,8],
        "8": [14,17,17,14,17,17,14],
        "9": [14,17,17,15,1,2,12],
        ":": [0,12,12,0,12,12,0],
        "=": [0,0,31,0,31,0,0],
        "A": [14,17,17,31,17,17,17],
        "B": [30,17,17,30,17,17,30],
        "C": [14,17,16,16,16,17,14],
        "D": [28,18,17,17,17,18,28],
        "E": [31,16,16,30,16,16,31],
        "F": [31,16,16,30,16,16,16],
        "G": [14,17,16,23,17,17,15],
        "H": [17,17,17,31,17,17,17],
        "I": [14,4,4,4,4,4,14],
        "J": [7,2,2,2,2,18,12],
        "K": [17,18,20,24,20,18,17],
        "L": [16,16,16,16,16,16,31],
        "M": [17,27,21,21,17,17,17],
        "N": [17,17,25,21,19,17,17],
        "O": [14,17,17,17,17,17,14],
        "P": [30,17,17,30,16,16,16],
        "Q": [14,17,17,17,21,18,13],
        "R": [30,17,17,30,20,18,17],
        "S": [15,16,16,14,1,1,30],
        "T": [31,4,4,4,4,4,4],
        "U": [17,17,17,17,17,17,14],
        "V": [17,17,17,17,17,10,4],
        "W": [17,17,17,21,21,21,10],
        "X": [17,17,10,4,10,17,17],
        "Y": [17,17,17,10,4,4,4],
        "Z": [31,1,2,4,8,16,31],
        "_": [0,0,0,0,0,0,31],
    ]

    /// Width in pixels of `text` at `scale`.
    public static func width(_ text: String, scale: Int = 1) -> Int { text.count * 6 * scale }

    /// Draws `text` with its top-left corner at (x, y); lowercase letters use capitals.
    public static func draw(_ text: String, on canvas: inout Canvas, x: Int, y: Int, scale: Int = 1,
                            color: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        var cx = x
        for ch in text {
            let key = Character(ch.uppercased())
            if let rows = glyphs[key] {
                for (r, bits) in rows.enumerated() {
                    for c in 0..<5 where bits & (1 << (4 - c)) != 0 {
                        for dy in 0..<scale { for dx in 0..<scale { canvas.set(cx + c * scale + dx, y + r * scale + dy, color) } }
                    }
                }
            }
            cx += 6 * scale
        }
    }
}

extension Canvas {
    /// A straight line (Bresenham).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            for t in 0..<thickness { set(x, y + t, color); set(x + t, y, color) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    public mutating func rect(_ x: Int, _ y: Int, _ w: Int, _ h: Int, color: (UInt8, UInt8, UInt8)) {
        line(x, y, x + w, y, color: color)
        line(x, y + h, x + w, y + h, color: color)
        line(x, y, x, y + h, color: color)
        line(x + w, y, x + w, y + h, color: color)
    }
}

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
