import Core
import Foundation
import MetaLearning

/// Human progress lines (stderr by default): one per training step (step, meta-loss, query
/// Dice, tasks/s, workers, ETA) and free-form notes. Libraries that run long stages take one
/// of these, or its `say`, so only executables decide where progress goes.
public final class ProgressLine: @unchecked Sendable {
    public let total: Int
    public let batch: Int
    public let quiet: Bool
    private let sink: @Sendable (String) -> Void
    private let clock = MonotonicClock()
    private var first: (step: Int, time: Double)?

    /// Lines to `sink` (stderr when nil); none when `quiet`.
    public init(total: Int, batch: Int, quiet: Bool = false, sink: (@Sendable (String) -> Void)? = nil) {
        self.total = total
        self.batch = batch
        self.quiet = quiet
        self.sink = sink ?? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    }

    public func step(_ r: StepReport, workers: (workers: Int, threads: Int)) {
        let done = r.step + 1
        let start = first ?? (r.step, clock.now - r.seconds)
        first = start
        let elapsed = clock.now - start.time, steps = Double(done - start.step)
        let eta = steps > 0 ? elapsed / steps * Double(total - done) : 0
        let who = workers.workers > 0 ? "  workers \(workers.workers) (\(workers.threads) threads)" : ""
        let line = String(format: "step %d/%d  meta-loss %.4f  query-dice %.3f  %.2f tasks/s", done, total, r.metaLoss, r.queryDice,
                          Double(batch) / max(r.seconds, 1e-9)) + who + "  ETA " + Self.duration(eta)
        note(line)
    }

    public func note(_ text: String) {
        guard !quiet else { return }
        sink(text)
    }

    /// "1h2m", "3m4s" or "5s".
    public static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}
