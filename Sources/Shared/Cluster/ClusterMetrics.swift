import Metrics

/// What the coordinator's socket loop reports (Prometheus with `--metrics-address`): workers,
/// tasks in flight, everything requeued or refused by kind, and traffic.
final class CoordinatorMetrics {
    let connected = Gauge(label: "medmaml_workers_connected")
    let ready = Gauge(label: "medmaml_workers_ready")
    let readyThreads = Gauge(label: "medmaml_worker_threads_ready")
    let quarantined = Gauge(label: "medmaml_workers_quarantined")
    let outstanding = Gauge(label: "medmaml_tasks_outstanding")
    let remaining = Gauge(label: "medmaml_tasks_remaining")
    let bytesSent = Counter(label: "medmaml_bytes_sent_total")
    let bytesReceived = Counter(label: "medmaml_bytes_received_total")
    let messagesReceived = Counter(label: "medmaml_messages_received_total")
    let connectionResets = Counter(label: "medmaml_connection_resets_total")
    private var faults: [String: Counter] = [:]
    private var last = Scheduler.Counters()

    /// The scheduler's counters by kind: faults, refusals, requeues, backups, verification.
    static func kinds(_ c: Scheduler.Counters) -> [(String, Int)] {
        [("malformed", c.malformed), ("stale", c.stale), ("duplicate", c.duplicate), ("unknown_peer", c.unknown),
         ("refused", c.refused), ("failed_task", c.faults), ("quarantined", c.quarantined), ("requeued", c.reassigned),
         ("backup", c.backups), ("lost_worker", c.lost), ("presumed_lost", c.presumedLost), ("suspicious", c.suspicious),
         ("arbitrated", c.arbitrated), ("verified", c.verified)]
    }

    func update(_ scheduler: Scheduler) {
        connected.record(scheduler.connectedWorkers)
        ready.record(scheduler.readyWorkers)
        readyThreads.record(scheduler.readyThreads)
        quarantined.record(scheduler.quarantinedIdentities)
        outstanding.record(scheduler.outstandingTasks)
        remaining.record(scheduler.remainingSlots)
        let now = scheduler.counters
        guard now != last else { return }
        for ((kind, value), (_, before)) in zip(Self.kinds(now), Self.kinds(last)) where value > before {
            let counter = faults[kind] ?? Counter(label: "medmaml_events_total", dimensions: [("kind", kind)])
            faults[kind] = counter
            counter.increment(by: value - before)
        }
        last = now
    }
}

/// What a worker reports (Prometheus with the worker's `--metrics-address`).
final class WorkerMetrics: @unchecked Sendable {
    let tasks = Counter(label: "medmaml_worker_tasks_total")
    let failures = Counter(label: "medmaml_worker_task_failures_total")
    let taskDuration = Metrics.Timer(label: "medmaml_worker_task_duration_seconds")
    let reconnects = Counter(label: "medmaml_worker_reconnects_total")
    let threads: Gauge = Gauge(label: "medmaml_worker_threads")
    private let busySeconds: [FloatingPointCounter]
    private let busyFraction: [Gauge]

    init(threads count: Int) {
        busySeconds = (0..<count).map { FloatingPointCounter(label: "medmaml_worker_busy_seconds_total", dimensions: [("thread", "\($0)")]) }
        busyFraction = (0..<count).map { Gauge(label: "medmaml_worker_busy_fraction", dimensions: [("thread", "\($0)")]) }
        threads.record(count)
    }

    /// A compute thread finished a task that took `seconds`; `fraction` is the thread's busy
    /// share of the last minute.
    func taskDone(thread: Int, seconds: Double, fraction: Double, failed: Bool) {
        tasks.increment()
        if failed { failures.increment() }
        taskDuration.recordSeconds(seconds)
        busySeconds[thread].increment(by: seconds)
        busyFraction[thread].record(fraction)
    }

    func idle(thread: Int, fraction: Double) { busyFraction[thread].record(fraction) }
}

/// A thread's busy share over a sliding window (for the busy-fraction gauge).
struct BusyWindow {
    let window: Double
    private var spans: [(start: Double, end: Double)] = []

    init(window: Double = 60) { self.window = window }

    mutating func add(start: Double, end: Double) {
        spans.append((start, end))
        spans.removeAll { $0.end < end - window }
    }

    func fraction(now: Double) -> Double {
        let from = now - window
        let busy = spans.reduce(0.0) { $0 + max(0, $1.end - max($1.start, from)) }
        return min(busy / window, 1)
    }
}
