import Foundation

/// An HTML report as a real browser shows it: Chromium (Debian's `chromium`, headless) loads
/// a copy of the page with a script that, once everything has loaded, measures every figure,
/// every image and the box of every text of every SVG figure, and writes what it found into
/// the page, which Chromium then prints.
public struct BrowserCheck: Decodable, Sendable {
    /// SVG figures on the page, and those drawn empty (under 50 px, or fewer than 3 shapes).
    public var figures: Int
    public var empty: [String]
    /// Images on the page, and those that did not load.
    public var images: Int
    public var broken: [String]
    /// Non-empty text elements inside the figures, and the pairs whose boxes intersect.
    public var texts: Int
    public var overlaps: [String]

    /// The browser, or nil when none is installed (`.ci/run` installs chromium).
    public static var browser: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let script = """
        <script>
        window.addEventListener('load', () => {
          const out = {figures: 0, empty: [], images: 0, broken: [], texts: 0, overlaps: []};
          const meet = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
          document.querySelectorAll('svg').forEach((svg, n) => {
            out.figures++;
            const r = svg.getBoundingClientRect();
            const shapes = svg.querySelectorAll('polyline, circle, line, rect').length;
            if (r.width < 50 || r.height < 50 || shapes < 3) out.empty.push('figure ' + n + ': ' + r.width + 'x' + r.height + ', ' + shapes + ' shapes');
            const boxes = Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim().length > 0)
              .map(t => [t.textContent, t.getBoundingClientRect()]);
            out.texts += boxes.length;
            for (let i = 0; i < boxes.length; i++)
              for (let j = i + 1; j < boxes.length; j++)
                if (meet(boxes[i][1], boxes[j][1])) out.overlaps.push('figure ' + n + ': "' + boxes[i][0] + '" and "' + boxes[j][0] + '"');
          });
          for (const img of document.images) { out.images++; if (!img.complete || img.naturalWidth === 0) out.broken.push(img.getAttribute('src')); }
          const pre = document.createElement('pre');
          pre.id = 'medmaml-browser-check';
          pre.textContent = JSON.stringify(out);
          document.body.appendChild(pre);
        });
        </script>
        """

    /// Loads `page` (an index.html; the images beside it) in the browser and returns what the
    /// script measured.
    public static func check(_ page: String, browser: String) throws -> BrowserCheck {
        let html = try String(contentsOfFile: page, encoding: .utf8)
        guard let end = html.range(of: "</body>", options: .backwards) else { throw CheckError("\(page) has no </body>") }
        let copy = URL(fileURLWithPath: page).deletingLastPathComponent().appendingPathComponent(".browser-check.html").path
        try (html[..<end.lowerBound] + script + html[end.lowerBound...]).write(toFile: copy, atomically: true, encoding: .utf8)
        // A profile of its own: Chromium started on a profile another instance holds exits at
        // once ("profile in use", exit 21), and report tests check their pages side by side.
        let profile = NSTemporaryDirectory() + "medmaml-chromium-" + UUID().uuidString
        defer {
            try? FileManager.default.removeItem(atPath: copy)
            try? FileManager.default.removeItem(atPath: profile)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: browser)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=10000",
                       "--user-data-dir=" + profile, "--dump-dom", "file://" + copy]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        _ = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let dom = String(decoding: data, as: UTF8.self)
        guard let start = dom.range(of: "<pre id=\"medmaml-browser-check\">"),
              let stop = dom.range(of: "</pre>", range: start.upperBound..<dom.endIndex) else {
            throw CheckError("the browser printed no measurements (exit \(p.terminationStatus)): \(dom.suffix(400))")
        }
        let json = dom[start.upperBound..<stop.lowerBound].replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
        return try JSONDecoder().decode(BrowserCheck.self, from: Data(json.utf8))
    }

    public struct CheckError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }
}
