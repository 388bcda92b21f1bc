import Core
import Datasets
import MetaLearning

/// A fingerprint of the numbers a machine computes for a run: the first meta-train task's
/// first sample and its meta-gradient at the run's initial parameters, and with pseudo-tasks
/// or union tasks beside the tasks, one of those tasks' first sample. Machines whose data
/// generation or matrix kernels differ get different fingerprints, and would break the
/// bitwise reproducibility of the run, so the coordinator refuses them.
public enum NumericsCheck {
    public static func fingerprint(run: RunSpec, source: TaskSource) throws -> String {
        try measure(run: run, source: source).fingerprint
    }

    /// The fingerprint; the norm of the meta-gradient it was computed from, an honest scale
    /// for the run's first gradients before any has been accepted; and the resident memory
    /// that computing one task added to this process (0 where it cannot be read).
    public static func measure(run: RunSpec, source: TaskSource) throws -> (fingerprint: String, gradientNorm: Double, taskBytes: Int) {
        let resident = ProcessMemory.residentBytes()
        let train = run.partition(source).train
        guard let first = train.first else { throw MetaConfigError.invalid("no meta-train tasks") }
        let config = run.training
        let sample = try source.sample(task: first, index: 0, seed: config.seed,
                                       support: config.meta.supportShots, query: config.meta.queryShots)
        let learner = try MetaLearner<Float>(config: config.meta)
        let meta = learner.layout.initialValues(seed: config.initSeed ?? config.seed, innerLearningRate: config.meta.innerLearningRate)
        var g = [Float](repeating: 0, count: meta.count)
        _ = learner.metaGradient(meta: meta, task: sample, step: 0, into: &g)
        let taskBytes = max((ProcessMemory.residentBytes() ?? 0) - (resident ?? Int.max), 0)
        var parts = [SHA256.hex(floats: sample.supportImages + sample.queryImages), SHA256.hex(floats: g)]
        // Pseudo-tasks or union tasks beside the tasks come after them, and their identity
        // names only their options or their pairs: the last meta-train task's first sample (a
        // pseudo-task's or a union task's), masks included, shows whether this machine draws
        // the same superpixels or unites the same masks.
        if run.dataset.pseudoBesideTasks != nil || run.dataset.unionBesideTasks, let last = train.last, last != first {
            let pseudo = try source.sample(task: last, index: 0, seed: config.seed,
                                           support: config.meta.supportShots, query: config.meta.queryShots)
            parts.append(SHA256.hex(floats: pseudo.supportImages + pseudo.queryImages + pseudo.supportMasks + pseudo.queryMasks))
        }
        return (SHA256.hex(Array(parts.joined(separator: "/").utf8)), g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), taskBytes)
    }
}
