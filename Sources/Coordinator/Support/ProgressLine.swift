import Core
import Foundation
import MetaLearning

/// A progress line per step on stderr: step, meta-loss, query Dice, tasks/s, workers, ETA.
final class ProgressLine: @unchecked Sendable {
    let total: Int
    let batch: Int
    let quiet: Bool
    let clock = MonotonicClock()
    var first: (step: Int, time: Double)?

    init(total: Int, batch: Int, quiet: Bool) {
        self.total = total
        self.batch = batch
        self.quiet = quiet
    }

    func step(_ r: StepReport, workers: (workers: Int, threads: Int)) {
        let done = r.step + 1
        if first == nil { first = (r.step, clock.now - r.seconds) }
        let elapsed = clock.now - first!.time, steps = Double(done - first!.step)
        let eta = steps > 0 ? elapsed / steps * Double(total - done) : 0
        let who = workers.workers > 0 ? "  workers \(workers.workers) (\(workers.threads) threads)" : ""
        let line = String(format: "step %d/%d  meta-loss %.4f  query-dice %.3f  %.2f tasks/s", done, total, r.metaLoss, r.queryDice,
                          Double(batch) / max(r.seconds, 1e-9)) + who + "  ETA " + Self.duration(eta)
        emit(line)
    }

    func note(_ text: String) { emit(text) }

    func finish() {}

    private func emit(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}
