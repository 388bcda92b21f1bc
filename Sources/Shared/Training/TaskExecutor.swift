import Core
import Datasets
import Evaluation
import Foundation
import MetaLearning

/// Computes one job of a run, the same way on a worker's thread and in process: a
/// meta-gradient with the run's learner, or an evaluation with the meta-test scorer.
///
/// Holds one learner and one scorer, so it is not thread-safe: one executor per thread.
public final class TaskExecutor {
    public let run: RunSpec
    public let source: TaskSource
    let learner: MetaLearner<Float>
    let scorer: MetaTest.Scorer

    public init(run: RunSpec, source: TaskSource) throws {
        self.run = run
        self.source = source
        learner = try MetaLearner<Float>(config: run.training.meta)
        scorer = try MetaTest.Scorer(model: run.training.meta.model, capacity: max(run.evaluation.support, run.evaluation.query))
    }

    /// Computes `job` at the meta-parameters `meta` of outer step `step`.
    public func compute(_ job: TaskJob, meta: [Float], step: Int, worker: String = "local") -> Result<TaskOutcome, DataError> {
        let clock = MonotonicClock()
        // The learner reads the layout's full length from `meta`: never hand it a shorter buffer.
        guard meta.count == learner.layout.count else {
            return .failure(.badRequest("parameters of \(meta.count) values for a model of \(learner.layout.count)"))
        }
        switch job.kind {
        case .metaGradient:
            return metaGradient(meta: meta, ref: job.ref, step: step).map {
                TaskOutcome(stats: $0.stats, gradient: $0.gradient, seconds: clock.now, worker: worker)
            }
        case .evaluate:
            let e = run.evaluation
            do throws(DataError) {
                let sample = try source.sample(task: job.ref.task, index: job.ref.index, seed: e.seed, support: e.support, query: e.query)
                let adaptation = MetaTest.Adaptation.maml(meta: meta, config: run.training.meta,
                                                          steps: e.steps ?? run.training.meta.innerSteps)
                let score: MetaTest.InstanceScore
                do { score = try scorer.score(adaptation, sample: sample) } catch {
                    return .failure(.badRequest("cannot evaluate \(job.ref): \(error)"))
                }
                let stats = TaskStatistics(queryLoss: Float(score.queryLoss), queryDice: Float(score.dice), supportLoss: 0, objective: 0)
                return .success(TaskOutcome(stats: stats, gradient: nil, seconds: clock.now, worker: worker))
            } catch {
                return .failure(error)
            }
        }
    }

    /// One task's meta-gradient: its sample drawn from the run's seed, then the learner.
    public func metaGradient(meta: [Float], ref: TaskRef, step: Int) -> Result<(gradient: [Float], stats: TaskStatistics), DataError> {
        let config = run.training
        guard meta.count == learner.layout.count else {
            return .failure(.badRequest("parameters of \(meta.count) values for a model of \(learner.layout.count)"))
        }
        do throws(DataError) {
            let sample = try source.sample(task: ref.task, index: ref.index, seed: config.seed,
                                           support: config.meta.supportShots, query: config.meta.queryShots)
            var g = [Float](repeating: 0, count: meta.count)
            let stats = meta.withUnsafeBufferPointer { m in
                g.withUnsafeMutableBufferPointer { learner.metaGradient(meta: m.baseAddress!, task: sample, step: step, into: $0.baseAddress!) }
            }
            return .success((g, stats))
        } catch {
            return .failure(error)
        }
    }
}
