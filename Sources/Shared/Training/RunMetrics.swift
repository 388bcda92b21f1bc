import MetaLearning
import Metrics

/// What a training run reports to the metrics system (Prometheus with `--metrics-address`):
/// progress and the quality of the meta-parameters. Created when a run starts, after the
/// executable has bootstrapped its backend; without one, recording costs nothing.
struct RunMetrics {
    let step = Gauge(label: "medmaml_step")
    let steps = Counter(label: "medmaml_steps_total")
    let stepSeconds = Gauge(label: "medmaml_step_seconds")
    let stepDuration = Metrics.Timer(label: "medmaml_step_duration_seconds")
    let tasksPerSecond = Gauge(label: "medmaml_tasks_per_second")
    let metaLoss = Gauge(label: "medmaml_meta_loss")
    let queryDice = Gauge(label: "medmaml_query_dice")
    let gradientNorm = Gauge(label: "medmaml_meta_gradient_norm")
    /// Created at the first evaluation, so a run that has none shows none.
    func heldOut(_ dice: Double) { Gauge(label: "medmaml_heldout_dice").record(dice) }
    let totalSteps = Gauge(label: "medmaml_steps_planned")

    func record(_ report: StepReport, metaBatch: Int, stepsDone: Int) {
        step.record(stepsDone)
        steps.increment()
        stepSeconds.record(report.seconds)
        stepDuration.recordSeconds(report.seconds)
        if report.seconds > 0 { tasksPerSecond.record(Double(metaBatch) / report.seconds) }
        metaLoss.record(Double(report.metaLoss))
        queryDice.record(Double(report.queryDice))
        gradientNorm.record(Double(report.gradientNorm))
    }
}
