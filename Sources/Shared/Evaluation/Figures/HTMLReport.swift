import Core

/// A self-contained HTML page of a run's results (`index.html`): headings, paragraphs,
/// tables and figures. SVG figures are inlined, so the page needs nothing but itself (and any
/// PNG overlays beside it), and a browser shows their text as text.
public struct HTMLReport: Sendable {
    public let title: String
    private var body: [String] = []

    public init(title: String) { self.title = title }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    public mutating func heading(_ text: String) { body.append("<h2>\(Self.escape(text))</h2>") }

    public mutating func paragraph(_ text: String) { body.append("<p>\(Self.escape(text))</p>") }

    /// Text shown as it is (a report's table).
    public mutating func preformatted(_ text: String) { body.append("<pre>\(Self.escape(text))</pre>") }

    /// A table: the first row is the header.
    public mutating func table(_ rows: [[String]]) {
        guard let head = rows.first else { return }
        var html = "<table><thead><tr>" + head.map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows.dropFirst() { html += "<tr>" + row.map { "<td>\(Self.escape($0))</td>" }.joined() + "</tr>" }
        body.append(html + "</tbody></table>")
    }

    /// An SVG figure, inlined, with a caption.
    public mutating func figure(_ svg: SVG, caption: String) {
        body.append("<figure>\(svg.text)<figcaption>\(Self.escape(caption))</figcaption></figure>")
    }

    /// An image file beside the page (a PNG overlay), with a caption.
    public mutating func image(_ file: String, caption: String, width: Int? = nil) {
        let size = width.map { " width=\"\($0)\"" } ?? ""
        body.append("<figure><img src=\"\(Self.escape(file))\" alt=\"\(Self.escape(caption))\"\(size)><figcaption>\(Self.escape(caption))</figcaption></figure>")
    }

    public var html: String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
        <style>
        body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em; max-width: 1400px; color: #222; }
        h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
        table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
        th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
        figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
        img { image-rendering: pixelated; border: 1px solid #ddd; }
        </style></head>
        <body><h1>\(Self.escape(title))</h1>
        \(body.joined(separator: "\n"))
        </body></html>

        """
    }

    public func write(to path: String) throws { try TextFile.write(html, to: path) }
}
