import Core
import Foundation

/// A scalable vector graphic built element by element: text in a real font (the viewer's
/// sans-serif), lines, paths, rectangles and circles. Figures are made of these so that they
/// stay sharp at any size and their text can be read (and checked) as text.
public struct SVG: Sendable {
    public let width: Double
    public let height: Double
    private(set) var elements: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// The font size of ordinary labels, in pixels.
    public static let fontSize = 12.0

    /// The width a label takes in the figure's font: an estimate on the generous side (0.62
    /// em per character), so that layouts that keep these boxes apart keep the text apart.
    public static func textWidth(_ text: String, size: Double = fontSize) -> Double { Double(text.count) * size * 0.62 }

    public static func color(_ c: (UInt8, UInt8, UInt8)) -> String { String(format: "#%02x%02x%02x", c.0, c.1, c.2) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func n(_ v: Double) -> String { String(format: "%.1f", v) }

    public enum Anchor: String { case start, middle, end }

    public mutating func text(_ s: String, x: Double, y: Double, size: Double = fontSize, anchor: Anchor = .start,
                              color: (UInt8, UInt8, UInt8) = (40, 40, 40), bold: Bool = false, rotate: Bool = false) {
        let transform = rotate ? " transform=\"rotate(-90 \(Self.n(x)) \(Self.n(y)))\"" : ""
        elements.append("<text x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" font-size=\"\(Self.n(size))\" text-anchor=\"\(anchor.rawValue)\" fill=\"\(Self.color(color))\"\(bold ? " font-weight=\"bold\"" : "")\(transform)>\(Self.escape(s))</text>")
    }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: (UInt8, UInt8, UInt8), width: Double = 1,
                              dashed: Bool = false) {
        elements.append("<line x1=\"\(Self.n(x1))\" y1=\"\(Self.n(y1))\" x2=\"\(Self.n(x2))\" y2=\"\(Self.n(y2))\" stroke=\"\(Self.color(color))\" stroke-width=\"\(Self.n(width))\"\(dashed ? " stroke-dasharray=\"4 3\"" : "")/>")
    }

    public mutating func polyline(_ points: [(Double, Double)], color: (UInt8, UInt8, UInt8), width: Double = 2) {
        guard points.count > 1 else { return }
        let p = points.map { "\(Self.n($0.0)),\(Self.n($0.1))" }.joined(separator: " ")
        elements.append("<polyline points=\"\(p)\" fill=\"none\" stroke=\"\(Self.color(color))\" stroke-width=\"\(Self.n(width))\" stroke-linejoin=\"round\"/>")
    }

    public mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: (UInt8, UInt8, UInt8)?,
                              stroke: (UInt8, UInt8, UInt8)? = nil, opacity: Double = 1) {
        elements.append("<rect x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(w, 0)))\" height=\"\(Self.n(max(h, 0)))\" fill=\"\(fill.map(Self.color) ?? "none")\"\(stroke.map { " stroke=\"\(Self.color($0))\"" } ?? "")\(opacity < 1 ? " fill-opacity=\"\(opacity)\"" : "")/>")
    }

    public mutating func circle(_ x: Double, _ y: Double, r: Double, fill: (UInt8, UInt8, UInt8)) {
        elements.append("<circle cx=\"\(Self.n(x))\" cy=\"\(Self.n(y))\" r=\"\(Self.n(r))\" fill=\"\(Self.color(fill))\"/>")
    }

    /// The document.
    public var text: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.n(width))\" height=\"\(Self.n(height))\" viewBox=\"0 0 \(Self.n(width)) \(Self.n(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + elements.joined(separator: "\n") + "\n</svg>\n"
    }

    public func write(to path: String) throws {
        try TextFile.write(text, to: path)
    }
}
