import Core
import Evaluation
import Foundation
import Testing
import TestSupport

/// The browser check that the report tests rely on finds what it is there to find: text that
/// overlaps, a figure drawn empty, an image that does not load.
@Suite struct BrowserCheckTests {
    let folder = TemporaryFolder()

    @Test func overlapsEmptyFiguresAndBrokenImagesAreFound() throws {
        let browser = try #require(BrowserCheck.browser, "no chromium: apt-get install chromium (.ci/run does)")
        var crowded = SVG(width: 300, height: 200)
        crowded.text("meta-test Dice", x: 20, y: 40)
        crowded.text("transfer-multiclass", x: 30, y: 44)
        crowded.text("apart", x: 200, y: 150)
        crowded.line(0, 0, 100, 100, color: (0, 0, 0))
        crowded.line(0, 100, 100, 0, color: (0, 0, 0))
        crowded.rect(10, 10, 50, 50, fill: nil, stroke: (0, 0, 0))
        var html = HTMLReport(title: "check")
        html.figure(crowded, caption: "two labels on top of each other")
        html.figure(SVG(width: 300, height: 200), caption: "nothing drawn")
        html.image("missing.png", caption: "an image that is not there")
        try html.write(to: folder.path + "/index.html")
        let check = try BrowserCheck.check(folder.path + "/index.html", browser: browser)
        #expect(check.figures == 2 && check.texts == 3)
        #expect(check.overlaps.count == 1 && check.overlaps.first?.contains("transfer-multiclass") == true, "\(check.overlaps)")
        #expect(check.empty.count == 1, "\(check.empty)")
        #expect(check.images == 1 && check.broken == ["missing.png"], "\(check.broken)")
    }

    /// Report tests run side by side in one test process, each checking its page. The checks
    /// once shared one browser profile, and a second browser started while the first ran
    /// exited at once with "profile in use" (exit 21), printing nothing.
    @Test func checksRunAtTheSameTimeEachGetTheirPage() throws {
        let browser = try #require(BrowserCheck.browser, "no chromium: apt-get install chromium (.ci/run does)")
        let pages = try (0..<3).map { n in
            var svg = SVG(width: 300, height: 200)
            svg.text("page \(n)", x: 20, y: 40)
            for i in 0..<3 { svg.line(0, Double(i * 10), 100, 100, color: (0, 0, 0)) }
            var html = HTMLReport(title: "page \(n)")
            html.figure(svg, caption: "one figure")
            let dir = folder.path + "/page-\(n)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try html.write(to: dir + "/index.html")
            return dir + "/index.html"
        }
        let results = Locked<[Int: Result<BrowserCheck, Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: pages.count) { n in
            let r = Result { try BrowserCheck.check(pages[n], browser: browser) }
            results.withLock { $0[n] = r }
        }
        for n in pages.indices {
            let check = try #require(try results.get()[n]?.get())
            #expect(check.figures == 1 && check.texts == 1 && check.empty.isEmpty, "page \(n): \(check)")
        }
    }
}
