import Logging
import Wire

/// Which result to trust: malformed copies are faults, suspicious ones wait for a second
/// opinion, copies that disagree are settled by a third (another worker, or the coordinator),
/// and an identity whose copy differs from the accepted result is quarantined.
extension Scheduler {
    /// The coordinator's own computation of a slot (see `Action.arbitrate`): the result is
    /// final. A copy that differs from it quarantines its identity; a slot the coordinator
    /// cannot compute either ends the run (a data problem, not a machine problem).
    public mutating func arbitrated(batch id: UInt64, slot: Int, _ outcome: Result<(Wire.Result, [Float]?), ArbitrationFailure>,
                                    now: Double) -> [Action] {
        let actions = withBatch { scheduler, batch in
            guard batch.id == id, batch.arbitrating.contains(slot), batch.outcomes[slot] == nil else { return [] }
            batch.arbitrating.remove(slot)
            switch outcome {
            case .failure(let failure):
                return [.fatal("task slot \(slot) (task \(batch.jobs[slot].ref.task), sample \(batch.jobs[slot].ref.index)) cannot be computed, on the workers or on the coordinator: \(failure.reason)")]
            case .success(let (result, gradient)):
                scheduler.counters.arbitrated += 1
                var actions: [Action] = [.log(.notice, "slot settled by the coordinator's own computation", ["batch": "\(id)", "slot": "\(slot)"])]
                var r = result
                r.slot = slot
                let copy = Copy(identity: "coordinator", worker: "coordinator", result: r, gradient: gradient, suspicion: nil)
                for (identity, reason) in batch.failures[slot] ?? [:] {
                    actions += scheduler.fault(identity: identity, "claimed it could not compute slot \(slot) (\(Self.cut(reason))), which the coordinator computed",
                                               batch: &batch)
                }
                return actions + scheduler.accept(copy, slot: slot, in: &batch) + scheduler.dispatch(&batch, now: now)
            }
        }
        return actions
    }

    mutating func result(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let r = try? message.decode(Wire.Result.self) else {
            counters.malformed += 1
            return [.log(.warning, "malformed result", peer(id))]
        }
        guard case .running(let current) = state, message.batch == current.id, current.jobs.indices.contains(r.slot) else {
            // A copy from a finished batch: its outstanding entry was cleared with the batch.
            counters.stale += 1
            return [.log(.debug, "stale result", peer(id, ["batch": "\(message.batch)", "slot": "\(r.slot)"]))]
        }
        return withBatch { scheduler, batch in scheduler.result(id, r, payload: message.payload, in: &batch, now: now) }
    }

    private mutating func result(_ id: WorkerID, _ r: Wire.Result, payload: [Float]?, in batch: inout Batch, now: Double) -> [Action] {
        guard var worker = workers[id], let sentAt = worker.finish(r.slot, now: now) else {
            counters.duplicate += 1
            return [.log(.warning, "result for a slot not assigned to this worker dropped", peer(id, ["slot": "\(r.slot)"]))]
        }
        batch.assigned[r.slot]?.remove(id)
        let identity = worker.identity
        batch.excluded[r.slot, default: []].insert(identity)
        if let problem = Self.malformation(r, payload: payload, job: batch.jobs[r.slot], parameterCount: settings.parameterCount) {
            workers[id] = worker
            requeue(r.slot, in: &batch)
            return fault(identity: identity, "bad result for slot \(r.slot): \(problem)", batch: &batch)
        }
        let copy = Copy(identity: identity, worker: worker.name, result: r, gradient: payload, suspicion: suspicion(r, gradient: payload))
        if let accepted = batch.outcomes[r.slot] {
            // A late copy (a backup, a verification): it must agree with what was accepted.
            workers[id] = worker
            counters.duplicate += 1
            let acceptedCopy = Copy(identity: "", worker: accepted.worker, result: accepted.result, gradient: accepted.gradient, suspicion: nil)
            return copy.agrees(with: acceptedCopy)
                ? [] : quarantine(identity: identity, "its result for slot \(r.slot) differs bit for bit from the accepted one (results are deterministic)",
                                  batch: &batch)
        }
        worker.completed += 1
        workers[id] = worker
        taskTimes.append(now - sentAt)
        batch.copies[r.slot, default: []].append(copy)
        var actions: [Action] = []
        if let why = copy.suspicion {
            counters.suspicious += 1
            actions.append(.log(.warning, "suspicious result held for a second opinion", peer(id, ["slot": "\(r.slot)", "why": "\(why)"])))
        }
        return actions + settle(r.slot, in: &batch)
    }

    /// What makes a result unusable whatever its values: the wrong kind, a missing, extra or
    /// misshapen payload, a Dice outside [0, 1], a negative loss or time.
    static func malformation(_ r: Wire.Result, payload: [Float]?, job: Job, parameterCount: Int) -> String? {
        if r.kind != job.kind { return "result kind \(r.kind) for a \(job.kind) task" }
        switch job.kind {
        case .metaGradient:
            guard let g = payload else { return "meta-gradient result without a payload" }
            if g.count != parameterCount { return "gradient of \(g.count) values, expected \(parameterCount)" }
        case .evaluate:
            if payload != nil { return "evaluation result with a payload" }
        }
        if r.queryDice.isFinite && !(0...1).contains(r.queryDice) { return "Dice \(r.queryDice) outside [0, 1]" }
        for (name, value) in [("query loss", r.queryLoss), ("support loss", r.supportLoss), ("objective", r.objective)] where value < 0 {
            return "negative \(name) \(value)"
        }
        if !(r.seconds.isFinite && r.seconds >= 0) { return "time \(r.seconds)" }
        return nil
    }

    /// Why a well-formed copy may not be accepted on its own: non-finite values, or a
    /// meta-gradient norm far outside the run's recent ones.
    private func suspicion(_ r: Wire.Result, gradient: [Float]?) -> String? {
        guard [r.queryLoss, r.queryDice, r.supportLoss, r.objective].allSatisfy(\.isFinite) else { return "non-finite loss or Dice" }
        guard let g = gradient else { return nil }
        guard g.allSatisfy(\.isFinite) else { return "non-finite gradient" }
        let norms = acceptedNorms + (settings.referenceNorm.map { [$0] } ?? [])
        guard !norms.isEmpty else { return nil }
        let norm = Self.norm(g)
        let median = norms.sorted()[norms.count / 2]
        return norm > settings.outlierFactor * max(median, .leastNormalMagnitude) || !norm.isFinite
            ? "gradient norm \(norm) is over \(Int(settings.outlierFactor)) times the recent median \(median)" : nil
    }

    static func norm(_ g: [Float]) -> Double {
        var s = 0.0
        for v in g { s += Double(v) * Double(v) }
        return s.squareRoot()
    }

    /// Accepts a slot's result when the copies allow it, or asks for another opinion.
    private mutating func settle(_ slot: Int, in batch: inout Batch) -> [Action] {
        guard batch.outcomes[slot] == nil else { return [] }
        let copies = batch.copies[slot] ?? []
        // Two identities agree bit for bit: settled, whatever the values.
        for (i, a) in copies.enumerated() {
            for other in copies[(i + 1)...] where other.identity != a.identity && a.agrees(with: other) {
                if batch.verify.contains(slot) { counters.verified += 1 }
                return accept(a, slot: slot, in: &batch)
            }
        }
        if copies.count == 1, copies[0].suspicion == nil, !batch.verify.contains(slot) {
            return accept(copies[0], slot: slot, in: &batch)
        }
        // Another opinion is needed: from an identity that has not answered, else the arbiter.
        requeue(slot, in: &batch)
        return []
    }

    /// Records `copy` as the slot's result; identities whose copies differ are quarantined.
    /// The last slot completes the batch: every worker's tasks are then over.
    private mutating func accept(_ copy: Copy, slot: Int, in batch: inout Batch) -> [Action] {
        var actions: [Action] = []
        for other in batch.copies[slot] ?? [] where !other.agrees(with: copy) {
            actions += quarantine(identity: other.identity, "its result for slot \(slot) differs bit for bit from the accepted one (results are deterministic)",
                                  batch: &batch)
        }
        batch.copies[slot] = nil
        batch.pending.removeAll { $0 == slot }
        batch.outcomes[slot] = Outcome(result: copy.result, gradient: copy.gradient, worker: copy.worker)
        guard batch.isComplete else { return actions }
        // Copies still running elsewhere will report stale results; their threads count as
        // free again now (a worker queues what it cannot start yet).
        for w in workers.keys {
            workers[w]?.outstanding = [:]
            workers[w]?.queued = []
        }
        let outcomes = batch.jobs.indices.compactMap { batch.outcomes[$0] }
        for o in outcomes {
            if let g = o.gradient, g.allSatisfy(\.isFinite) { acceptedNorms.append(Self.norm(g)) }
        }
        acceptedNorms = Array(acceptedNorms.suffix(64))
        return actions + [.batchComplete(batch: batch.id, outcomes)]
    }

    mutating func failed(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let n = try? message.decode(Wire.Notice.self), let slot = n.slot, case .running(let b) = state, message.batch == b.id,
              b.outcomes[slot] == nil, var worker = workers[id], worker.finish(slot, now: now) != nil
        else {
            counters.stale += 1
            return []
        }
        workers[id] = worker
        return withBatch { scheduler, batch in
            batch.assigned[slot]?.remove(id)
            batch.failures[slot, default: [:]][worker.identity] = Self.cut(n.reason)
            batch.excluded[slot, default: []].insert(worker.identity)
            scheduler.requeue(slot, in: &batch)
            return [.log(.warning, "worker could not compute a slot; trying another worker", scheduler.peer(id, ["slot": "\(slot)", "reason": "\(Self.cut(n.reason))"]))]
        }
    }

    /// A bad result or a false claim: repeated ones quarantine the identity.
    private mutating func fault(identity: String, _ problem: String, batch: inout Batch) -> [Action] {
        counters.faults += 1
        faults[identity, default: 0] += 1
        var actions: [Action] = [.log(.warning, "fault", ["identity": "\(identity.prefix(16))", "problem": "\(problem)"])]
        if (faults[identity] ?? 0) >= settings.maximumFaults {
            actions += quarantine(identity: identity, "\(settings.maximumFaults) bad results", batch: &batch)
        }
        return actions
    }

    /// Shuts out an identity for the rest of the run, on every connection it has or makes.
    private mutating func quarantine(identity: String, _ why: String, batch: inout Batch) -> [Action] {
        guard identity != "coordinator", quarantined.insert(identity).inserted else { return [] }
        counters.quarantined += 1
        var actions: [Action] = [.log(.error, "worker quarantined", ["identity": "\(identity.prefix(16))", "why": "\(why)"])]
        for (id, w) in workers where w.identity == identity {
            remove(id, batch: &batch)
            actions.append(.send(id, Wire.Message(.shutdown, run: run, body: Wire.Notice(reason: "quarantined: \(why)"))))
        }
        return actions
    }
}
