import Datasets

/// Means with confidence intervals per category (for example per-task Dice): for each
/// category, one dot and vertical bar per group (method), side by side.
public enum IntervalChart {
    public struct Group: Sendable {
        public var label: String
        public var color: (UInt8, UInt8, UInt8)
        /// One interval per category, in category order.
        public var intervals: [MeanCI]
        public init(label: String, color: (UInt8, UInt8, UInt8), intervals: [MeanCI]) {
            self.label = label
            self.color = color
            self.intervals = intervals
        }
    }

    /// The chart on a 0...1 axis, categories labelled under the axis.
    public static func render(_ groups: [Group], categories: [String], title: String, height: Int = 360) -> Canvas {
        let slot = max(18 * groups.count + 16, 8 + 6 * (categories.map(\.count).max() ?? 0) / 2)
        let left = 52, top = 34, bottom = height - 70
        let width = left + 20 + slot * max(categories.count, 1)
        var canvas = Canvas(width: width, height: height)
        let axis: (UInt8, UInt8, UInt8) = (90, 90, 90), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
        Font5x7.draw(title, on: &canvas, x: (width - Font5x7.width(title, scale: 2)) / 2, y: 8, scale: 2)
        func py(_ y: Double) -> Int { bottom - Int(Double(bottom - top) * min(max(y, 0), 1)) }
        for k in 0...4 {
            let v = Double(k) / 4
            canvas.line(left, py(v), width - 20, py(v), color: grid)
            let label = Chart.label(v)
            Font5x7.draw(label, on: &canvas, x: left - 6 - Font5x7.width(label), y: py(v) - 3, color: axis)
        }
        canvas.rect(left, top, width - 20 - left, bottom - top, color: axis)
        for (c, name) in categories.enumerated() {
            let x0 = left + c * slot
            for (g, group) in groups.enumerated() where c < group.intervals.count && group.intervals[c].count > 0 {
                let m = group.intervals[c]
                let x = x0 + 12 + g * 18
                let lo = m.lower.isFinite ? m.lower : m.mean, hi = m.upper.isFinite ? m.upper : m.mean
                canvas.line(x, py(lo), x, py(hi), color: group.color, thickness: 1)
                canvas.line(x - 3, py(m.mean), x + 3, py(m.mean), color: group.color, thickness: 3)
            }
            // Category names in two lines when long.
            let half = name.count > slot / 6 ? name.count / 2 : name.count
            let first = String(name.prefix(half)), second = String(name.dropFirst(half))
            Font5x7.draw(first, on: &canvas, x: x0 + 6, y: bottom + 6, color: axis)
            if !second.isEmpty { Font5x7.draw(second, on: &canvas, x: x0 + 6, y: bottom + 16, color: axis) }
        }
        var lx = left
        for group in groups {
            canvas.line(lx, bottom + 40, lx + 14, bottom + 40, color: group.color, thickness: 3)
            Font5x7.draw(group.label, on: &canvas, x: lx + 18, y: bottom + 37, color: (40, 40, 40))
            lx += 30 + Font5x7.width(group.label)
        }
        return canvas
    }
}
