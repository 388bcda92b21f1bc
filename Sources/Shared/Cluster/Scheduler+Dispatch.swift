import Core
import Logging
import Wire

/// Which task goes where: pending tasks to free threads, tasks sent ahead to hide latency,
/// backup copies of tasks outstanding past the deadline, and tasks presumed lost.
extension Scheduler {
    /// The deadline after which an outstanding task gets a backup copy: a multiple of the lower
    /// quartile of recent task times, so that slow workers cannot push it up step after step.
    public var deadline: Double {
        guard !taskTimes.isEmpty else { return max(settings.minimumDeadline, settings.heartbeat.initialDeadline) }
        let sorted = taskTimes.suffix(64).sorted()
        return max(settings.minimumDeadline, settings.deadlineFactor * sorted[sorted.count / 4])
    }

    /// Whether a slot is computed twice: a deterministic draw from the run, batch and slot.
    static func isVerified(run: Wire.RunID, batch: UInt64, slot: Int, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        var key = run.bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        key ^= 0x7665_7269_6679   // "verify"
        var rng = RandomStream(key: [key, batch, UInt64(slot)])
        return rng.unitDouble() < fraction
    }

    /// Puts a slot back in the queue (see `Batch.requeue`), counting it.
    mutating func requeue(_ slot: Int, in batch: inout Batch) {
        if batch.requeue(slot) { counters.reassigned += 1 }
    }

    /// Dispatches the running batch's work, if a batch is running.
    mutating func dispatch(now: Double) -> [Action] {
        withBatch { scheduler, batch in scheduler.dispatch(&batch, now: now) }
    }

    /// Gives pending tasks to ready workers with free threads; sends to the arbiter what no
    /// connected identity may compute; once none is pending, gives idle workers backup copies
    /// of tasks outstanding longer than the deadline.
    mutating func dispatch(_ batch: inout Batch, now: Double) -> [Action] {
        guard !batch.isComplete else { return [] }
        var actions: [Action] = []
        let current = batch.id
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        func eligible(_ slot: Int, _ id: WorkerID, _ batch: Batch) -> Bool {
            guard let identity = workers[id]?.identity else { return false }
            return !(batch.excluded[slot]?.contains(identity) ?? false)
        }
        func send(_ slot: Int, to id: WorkerID, in batch: inout Batch, ahead: Bool = false) {
            guard var w = workers[id] else { return }
            if w.paramsBatch != current {
                w.paramsBatch = current
                actions.append(.sendParams(id, batch: current))
            }
            w.outstanding[slot] = now
            if ahead { w.queued.append(slot) }
            w.lastSent = now
            workers[id] = w
            batch.assigned[slot, default: []].insert(id)
            let job = batch.jobs[slot]
            actions.append(.send(id, Wire.Message(.task, run: run, batch: current, body: Wire.Task(slot: slot, kind: job.kind, ref: job.ref))))
        }
        // A slot that already has copies or failures, and that no connected identity may
        // compute, goes to the coordinator: waiting could be forever. So does a slot that two
        // identities could not compute: a data problem shows there too, and ends the run.
        for slot in batch.pending where !(batch.copies[slot] ?? []).isEmpty || !(batch.failures[slot] ?? [:]).isEmpty {
            guard (batch.failures[slot]?.count ?? 0) >= 2 || !ids.contains(where: { eligible(slot, $0, batch) }) else { continue }
            batch.pending.removeAll { $0 == slot }
            batch.arbitrating.insert(slot)
            actions.append(.log(.info, "no other worker can give a second opinion: the coordinator computes the slot",
                                ["batch": "\(current)", "slot": "\(slot)"]))
            actions.append(.arbitrate(batch: current, slot: slot, batch.jobs[slot]))
        }
        for id in ids {
            while (workers[id]?.free ?? 0) > 0, let index = batch.pending.firstIndex(where: { eligible($0, id, batch) }) {
                send(batch.pending.remove(at: index), to: id, in: &batch)
            }
        }
        // Tasks sent ahead, one at a time to the worker with the fewest queued per thread, while
        // pending plus queued tasks cover every ready thread (the sum does not change here).
        let ready = ids.compactMap { id in workers[id].flatMap { $0.phase == .ready ? (id, $0.threads) : nil } }
        let threads = ready.reduce(0) { $0 + $1.1 }
        func queued(_ id: WorkerID) -> Int { workers[id]?.queued.count ?? 0 }
        if settings.prefetch > 0, batch.pending.count + ready.reduce(0, { $0 + queued($1.0) }) >= threads {
            func room(_ id: WorkerID, _ threads: Int) -> Bool { queued(id) < settings.prefetch * threads }
            func load(_ id: WorkerID, _ threads: Int) -> Double { Double(queued(id)) / Double(threads) }
            while !batch.pending.isEmpty {
                let candidates = ready.filter { id, threads in room(id, threads) && batch.pending.contains { eligible($0, id, batch) } }
                guard let (id, _) = candidates.min(by: { load($0.0, $0.1) < load($1.0, $1.1) }),
                      let index = batch.pending.firstIndex(where: { eligible($0, id, batch) }) else { break }
                send(batch.pending.remove(at: index), to: id, in: &batch, ahead: true)
            }
        }
        guard batch.pending.isEmpty else { return actions }
        let limit = deadline
        // A task outstanding for `presumedLostFactor` deadlines is presumed lost (its result
        // dropped on the way, say): it goes back to the queue and frees its holder's slot, so a
        // batch cannot wait forever when every worker holds such a task and none is idle for a backup.
        for slot in batch.assigned.keys.sorted() where batch.outcomes[slot] == nil {
            for holder in (batch.assigned[slot] ?? []).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                guard let sentAt = workers[holder]?.outstanding[slot], now - sentAt > settings.presumedLostFactor * limit else { continue }
                _ = workers[holder]?.finish(slot, now: now)
                batch.assigned[slot]?.remove(holder)
                counters.presumedLost += 1
                actions.append(.log(.warning, "slot unanswered: presumed lost, requeued",
                                    peer(holder, ["slot": "\(slot)", "silent.s": "\(Int(now - sentAt))"])))
                requeue(slot, in: &batch)
            }
        }
        if !batch.pending.isEmpty { return actions + dispatch(&batch, now: now) }
        for slot in batch.assigned.keys.sorted() where batch.outcomes[slot] == nil {
            let holders = batch.assigned[slot] ?? []
            guard holders.count == 1, let holder = holders.first, let holding = workers[holder],
                  let sentAt = holding.outstanding[slot], now - sentAt > limit,
                  let idle = ids.first(where: { id in
                      guard id != holder, let w = workers[id] else { return false }
                      return w.free > 0 && eligible(slot, id, batch) && w.identity != holding.identity
                  }),
                  let backup = workers[idle]
            else { continue }
            counters.backups += 1
            actions.append(.log(.info, "slot outstanding past the deadline: backup copy",
                                peer(holder, ["slot": "\(slot)", "outstanding.s": "\(Int(now - sentAt))", "deadline.s": "\(Int(limit))",
                                              "backup": "\(backup.name)"])))
            send(slot, to: idle, in: &batch)
        }
        return actions
    }
}
