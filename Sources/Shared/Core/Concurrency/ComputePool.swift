import Foundation

/// A fixed set of compute threads, each owning one piece of per-thread state (a learner
/// with its network and workspaces), that run independent jobs.
///
/// Results are returned in job order whatever thread computed them, so anything summed from
/// them in order is independent of the number of threads. Jobs run single-threaded (BLAS
/// included). `run` is not reentrant: one batch at a time.
public final class ComputePool<State, Job: Sendable, Output>: @unchecked Sendable {
    private let condition = NSCondition()
    private var states: [State]
    private var jobs: [Job] = []
    private var outputs: [Output?] = []
    private var next = 0
    private var remaining = 0
    private var generation = 0
    private var body: ((inout State, Job, Int) -> Output)?
    private var stopping = false
    private var threads: [Thread] = []
    private let exited = DispatchGroup()

    /// `makeState(i)` builds thread i's state, on the calling thread.
    public init(threads count: Int, name: String = "medmaml-compute", makeState: (Int) throws -> State) rethrows {
        precondition(count >= 1 && count <= 1024, "thread count out of range")
        states = try (0..<count).map(makeState)
        for i in 0..<count {
            exited.enter()
            let t = Thread { [self] in self.loop(i) }
            t.name = "\(name)-\(i)"
            t.stackSize = 8 << 20
            threads.append(t)
            t.start()
        }
    }

    deinit {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        exited.wait()
    }

    public var threadCount: Int { states.count }

    /// Runs `body(&state, job, index)` for every job and returns the outputs in job order.
    public func run(_ jobs: [Job], _ body: @escaping (inout State, Job, Int) -> Output) -> [Output] {
        guard !jobs.isEmpty else { return [] }
        condition.lock()
        self.jobs = jobs
        self.body = body
        outputs = Array(repeating: nil, count: jobs.count)
        next = 0
        remaining = jobs.count
        generation += 1
        condition.broadcast()
        while remaining > 0 { condition.wait() }
        let result = outputs.map { $0! }
        self.jobs = []
        self.body = nil
        condition.unlock()
        return result
    }

    private func loop(_ index: Int) {
        defer { exited.leave() }
        condition.lock()
        while true {
            while !stopping && next >= jobs.count { condition.wait() }
            if stopping { condition.unlock(); return }
            let j = next
            next += 1
            let job = jobs[j]
            let work = body!
            var state = states[index]
            condition.unlock()
            let output = work(&state, job, j)
            condition.lock()
            states[index] = state
            outputs[j] = output
            remaining -= 1
            if remaining == 0 { condition.broadcast() }
        }
    }
}
