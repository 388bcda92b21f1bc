import Core
import Datasets
import Evaluation
import Foundation

/// predict's `index.html`: the run's settings, a table of the cases (time, and Dice and HD95
/// per label against the reference), and for each case the slice with the most predicted
/// pixels, its predicted outline in yellow and the reference's in green (PNG, enlarged so an
/// edge can be seen).
enum PredictReport {
    /// The overlay of one case, written to `folder/overlays/<name>.png`; returns its path
    /// relative to `folder`, or nil when nothing was predicted.
    static func overlay(_ slices: Preprocessing.Slices, labels: [UInt8], truth: NIfTIVolume?, name: String, folder: String) throws -> String? {
        let slicer = slices.slicer
        var best = -1, most = 0
        for s in 0..<slicer.count {
            let n = slicer.slice(labels, s).reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            if n > most { (best, most) = (s, n) }
        }
        guard best >= 0 else { return nil }
        let truthSlice = truth.map { slicer.slice($0.values, best).map { $0 != 0 ? Float(1) : 0 } }
        let file = "overlays/" + name.replacingOccurrences(of: ".nii.gz", with: "") + String(format: "-slice-%04d.png", best)
        try FileManager.default.createDirectory(atPath: folder + "/overlays", withIntermediateDirectories: true)
        try Overlay.render(slices.image(best), height: slices.height, width: slices.width,
                           prediction: slicer.slice(labels, best).map { $0 != 0 ? 1 : 0 }, truth: truthSlice,
                           predictionHeight: slicer.height, predictionWidth: slicer.width).write(to: folder + "/" + file)
        return file
    }

    static func write(_ report: PredictJob.Report, overlays: [String: String], to folder: String) throws {
        var html = HTMLReport(title: "MedMAML predictions")
        html.paragraph("Model \(report.checkpoint); labels \(report.labels.map(String.init).joined(separator: ", ")); preprocessing \(report.preprocessing); windows of \(report.window) pixels, overlap \(report.overlap); adapted in \(String(format: "%.1f", report.adaptSeconds)) s.")
        let scored = report.cases.contains { $0.scores != nil }
        var rows = [["case", "output", "seconds"] + (scored ? report.labels.flatMap { ["label \($0) Dice", "label \($0) HD95 (mm)"] } : [])]
        for c in report.cases {
            var row = [c.input, c.output, String(format: "%.1f", c.seconds)]
            if scored {
                for l in report.labels {
                    let s = c.scores?[l]
                    row += [s.map { String(format: "%.3f", $0.dice) } ?? "-", s?.hd95.map { String(format: "%.1f", $0) } ?? "-"]
                }
            }
            rows.append(row)
        }
        html.table(rows)
        for c in report.cases {
            guard let file = overlays[c.output] else { continue }
            html.image(file, caption: "\(c.input): the slice with the most predicted pixels; prediction yellow" + (scored ? ", reference green" : ""))
        }
        try html.write(to: folder + "/index.html")
    }
}
