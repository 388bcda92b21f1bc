/// Where a run's tasks are computed: threads in this process (`InProcessBackend`), or workers
/// over the network (`DistributedBackend`, in the Cluster layer). `TrainingRun` does the rest
/// (sampling, averaging, Adam, evaluation, checkpoints) the same way for both, which is why
/// both end with the same bits.
public protocol TaskBackend: AnyObject {
    /// Gets ready before the first batch (binds sockets, starts threads, waits for workers).
    /// Returns false if a stop signal arrived first.
    func start(_ run: TrainingRun) throws -> Bool
    /// Computes `jobs` at `parameters` (outer step `step`); outcomes in job order, or nil if a
    /// stop signal arrived first.
    func compute(_ jobs: [TaskJob], parameters: [Float], phase: BatchPhase, step: Int) throws -> [TaskOutcome]?
    /// Workers and threads computing, for progress lines.
    var status: (workers: Int, threads: Int) { get }
    /// The run is complete: release workers and threads.
    func finish()
}

/// What a batch is for: a training step's meta-gradients, or the held-out evaluation after it.
public enum BatchPhase: Sendable, Equatable {
    case training
    case evaluation
}
