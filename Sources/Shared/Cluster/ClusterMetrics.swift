import Core
import Metrics

/// What the coordinator's socket loop reports (Prometheus with `--metrics-address`): workers,
/// tasks in flight, everything requeued or refused by kind, and traffic; every series labelled
/// `run="<run id>"`. As with `RunMetrics`, a process exports its latest run's only.
final class CoordinatorMetrics {
    let run: String
    let connected: Gauge
    let ready: Gauge
    /// `--min-workers` (at least 1 with local workers): the "too few workers" alert compares
    /// the ready workers with it.
    let required: Gauge
    let readyThreads: Gauge
    let quarantined: Gauge
    let outstanding: Gauge
    let remaining: Gauge
    let bytesSent: Counter
    let bytesReceived: Counter
    let messagesReceived: Counter
    let connectionResets: Counter
    private var faults: [String: Counter] = [:]
    private var last = Scheduler.Counters()

    private static let latest = Locked<CoordinatorMetrics?>(nil)

    init(run: String, requiredWorkers: Int) {
        self.run = run
        let d = [("run", run)]
        connected = Gauge(label: "medmaml_workers_connected", dimensions: d)
        ready = Gauge(label: "medmaml_workers_ready", dimensions: d)
        required = Gauge(label: "medmaml_workers_required", dimensions: d)
        readyThreads = Gauge(label: "medmaml_worker_threads_ready", dimensions: d)
        quarantined = Gauge(label: "medmaml_workers_quarantined", dimensions: d)
        outstanding = Gauge(label: "medmaml_tasks_outstanding", dimensions: d)
        remaining = Gauge(label: "medmaml_tasks_remaining", dimensions: d)
        bytesSent = Counter(label: "medmaml_bytes_sent_total", dimensions: d)
        bytesReceived = Counter(label: "medmaml_bytes_received_total", dimensions: d)
        messagesReceived = Counter(label: "medmaml_messages_received_total", dimensions: d)
        connectionResets = Counter(label: "medmaml_connection_resets_total", dimensions: d)
        required.record(requiredWorkers)
        Self.latest.withLock { previous in
            if let previous, previous !== self { previous.destroy() }
            previous = self
        }
    }

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
            let counter = faults[kind] ?? Counter(label: "medmaml_events_total", dimensions: [("run", run), ("kind", kind)])
            faults[kind] = counter
            counter.increment(by: value - before)
        }
        last = now
    }

    /// Removes every series of this run from the export.
    private func destroy() {
        for gauge in [connected, ready, required, readyThreads, quarantined, outstanding, remaining] { gauge.destroy() }
        for counter in [bytesSent, bytesReceived, messagesReceived, connectionResets] + Array(faults.values) { counter.destroy() }
    }
}

/// What a worker reports (Prometheus with the worker's `--metrics-address`), every series
/// labelled `run="<run id>"`. A worker learns its run at WELCOME, so it creates these then and
/// exports nothing before; it serves one run in its life (a coordinator of another run
/// refuses it).
final class WorkerMetrics: @unchecked Sendable {
    let tasks: Counter
    let failures: Counter
    let taskDuration: Metrics.Timer
    let reconnects: Counter
    let threads: Gauge
    private let busySeconds: [FloatingPointCounter]
    private let busyFraction: [Gauge]

    init(run: String, threads count: Int) {
        let d = [("run", run)]
        tasks = Counter(label: "medmaml_worker_tasks_total", dimensions: d)
        failures = Counter(label: "medmaml_worker_task_failures_total", dimensions: d)
        taskDuration = Metrics.Timer(label: "medmaml_worker_task_duration_seconds", dimensions: d)
        reconnects = Counter(label: "medmaml_worker_reconnects_total", dimensions: d)
        threads = Gauge(label: "medmaml_worker_threads", dimensions: d)
        busySeconds = (0..<count).map { FloatingPointCounter(label: "medmaml_worker_busy_seconds_total", dimensions: d + [("thread", "\($0)")]) }
        busyFraction = (0..<count).map { Gauge(label: "medmaml_worker_busy_fraction", dimensions: d + [("thread", "\($0)")]) }
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
