import Core
import Datasets

/// Computes every task on a pool of threads in this process, with no sockets: the
/// `--in-process` mode, and what tests and studies use.
public final class InProcessBackend: TaskBackend {
    public let threads: Int
    private var pool: ComputePool<TaskExecutor, TaskJob, Result<TaskOutcome, DataError>>?

    public init(threads: Int) {
        precondition(threads >= 1, "at least one thread")
        self.threads = threads
    }

    public func start(_ run: TrainingRun) throws -> Bool {
        let spec = run.spec, source = run.source
        pool = try ComputePool(threads: threads) { _ in try TaskExecutor(run: spec, source: source) }
        return true
    }

    public func compute(_ jobs: [TaskJob], parameters: [Float], phase: BatchPhase, step: Int) throws -> [TaskOutcome]? {
        guard let pool else { preconditionFailure("compute before start") }
        let results = pool.run(jobs) { executor, job, _ in executor.compute(job, meta: parameters, step: step) }
        return try results.map { try $0.get() }
    }

    public var status: (workers: Int, threads: Int) { (0, threads) }

    public func finish() { pool = nil }
}
