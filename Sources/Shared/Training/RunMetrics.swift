import Core
import Foundation
import MetaLearning
import Metrics

/// What a training run reports to the metrics system (Prometheus with `--metrics-address`):
/// progress and the quality of the meta-parameters, every series labelled `run="<run id>"`.
/// Created when a run starts, after the executable has bootstrapped its backend; without one,
/// recording costs nothing.
///
/// A process exports the metrics of its latest run only: a study trains many runs one after
/// another, and the finished ones' last values (a step that no longer moves, a quarantine
/// long over) would otherwise stay on the scrape and fire alerts. Creating the metrics of a
/// run retires the previous run's; the latest stay until the process exits, so the last
/// scrape sees how the run ended.
struct RunMetrics {
    let run: String
    let step: Gauge
    let steps: Counter
    let stepSeconds: Gauge
    let stepDuration: Metrics.Timer
    let tasksPerSecond: Gauge
    let metaLoss: Gauge
    let queryDice: Gauge
    let gradientNorm: Gauge
    let totalSteps: Gauge
    /// Unix time of the last outer step, or of the run's (re)start before its first one: the
    /// "no outer step for N minutes" alert compares it with the clock.
    let lastStep: Gauge
    /// 1 once the run stopped because training diverged (a step would have made the state
    /// non-finite), 0 before.
    let diverged: Gauge

    private static let latest = Locked<RunMetrics?>(nil)

    init(run: String) {
        self.run = run
        let d = [("run", run)]
        step = Gauge(label: "medmaml_step", dimensions: d)
        steps = Counter(label: "medmaml_steps_total", dimensions: d)
        stepSeconds = Gauge(label: "medmaml_step_seconds", dimensions: d)
        stepDuration = Metrics.Timer(label: "medmaml_step_duration_seconds", dimensions: d)
        tasksPerSecond = Gauge(label: "medmaml_tasks_per_second", dimensions: d)
        metaLoss = Gauge(label: "medmaml_meta_loss", dimensions: d)
        queryDice = Gauge(label: "medmaml_query_dice", dimensions: d)
        gradientNorm = Gauge(label: "medmaml_meta_gradient_norm", dimensions: d)
        totalSteps = Gauge(label: "medmaml_steps_planned", dimensions: d)
        lastStep = Gauge(label: "medmaml_last_step_timestamp_seconds", dimensions: d)
        diverged = Gauge(label: "medmaml_training_diverged", dimensions: d)
        lastStep.record(Date().timeIntervalSince1970)
        diverged.record(0)
        let current = self
        Self.latest.withLock { previous in
            if let previous, previous.run != run { previous.destroy() }
            previous = current
        }
    }

    /// Created at the first evaluation, so a run that has none shows none.
    func heldOut(_ dice: Double) {
        evaluated.set(true)
        heldOutGauge.record(dice)
    }
    private var heldOutGauge: Gauge { Gauge(label: "medmaml_heldout_dice", dimensions: [("run", run)]) }
    private let evaluated = Locked(false)

    func record(_ report: StepReport, metaBatch: Int, stepsDone: Int) {
        step.record(stepsDone)
        steps.increment()
        stepSeconds.record(report.seconds)
        stepDuration.recordSeconds(report.seconds)
        if report.seconds > 0 { tasksPerSecond.record(Double(metaBatch) / report.seconds) }
        metaLoss.record(Double(report.metaLoss))
        queryDice.record(Double(report.queryDice))
        gradientNorm.record(Double(report.gradientNorm))
        lastStep.record(Date().timeIntervalSince1970)
    }

    /// Removes every series of this run from the export.
    private func destroy() {
        for gauge in [step, stepSeconds, tasksPerSecond, metaLoss, queryDice, gradientNorm, totalSteps, lastStep, diverged] { gauge.destroy() }
        steps.destroy()
        stepDuration.destroy()
        if evaluated.get() { heldOutGauge.destroy() }
    }
}
