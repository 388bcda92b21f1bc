import Logging
import Wire

/// Who is alive: registration, readiness checks, heartbeats and expiry, and forgetting a
/// worker (its unfinished tasks go back in the queue).
extension Scheduler {
    /// Heartbeats, expiry of silent workers, dispatch and backup copies.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        for id in workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let w = workers[id] else { continue }
            if now - w.lastSeen > settings.heartbeat.expiry {
                counters.lost += 1
                // A restarted worker may have registered again before its old connection fell
                // silent: then it is not missing.
                if !workers.contains(where: { $0.key != id && $0.value.name == w.name }) { missing[id] = w.name }
                actions.append(.log(.warning, "worker silent: declared dead, its tasks reassigned",
                                    peer(id, ["silent.s": "\(Int(now - w.lastSeen))", "tasks": "\(w.outstanding.count)"])))
                actions += remove(id)
                continue
            }
            if now - w.lastSent >= settings.heartbeat.interval {
                workers[id]?.lastSent = now
                actions.append(.send(id, Wire.Message(.heartbeat, run: run, body: Wire.Empty())))
            }
        }
        return actions + dispatch(now: now)
    }

    /// Forgets every worker (their connections were dropped), requeueing their tasks; each is
    /// told to register again on its next message.
    public mutating func disconnectAll(now: Double) -> [Action] {
        let ids = workers.keys.sorted(by: { $0.lexicographicallyPrecedes($1) })
        var actions: [Action] = [.log(.warning, "every worker disconnected; their tasks are requeued", ["workers": "\(ids.count)"])]
        for id in ids {
            missing[id] = workers[id]?.name
            actions += remove(id)
        }
        return actions + dispatch(now: now)
    }

    mutating func hello(_ id: WorkerID, identity: String, _ message: Wire.Message, now: Double) -> [Action] {
        let hello: Wire.Hello
        do { hello = try message.decode(Wire.Hello.self) } catch {
            counters.malformed += 1
            return [.log(.warning, "dropped a malformed hello", peer(id, ["reason": "\(error)"]))]
        }
        guard !hello.name.isEmpty, hello.name.utf8.count <= Wire.maximumNameLength,
              hello.name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            counters.refused += 1
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: "worker names must be 1...\(Wire.maximumNameLength) printable bytes"))),
                    .log(.warning, "refused a worker with a bad name", peer(id, ["name.bytes": "\(hello.name.utf8.count)"]))]
        }
        if let previous = hello.previousRun, previous != run.description {
            counters.refused += 1
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: "the worker belongs to run \(Self.cut(previous)); this coordinator runs \(run)"))),
                    .log(.warning, "refused a worker of another run", peer(id, ["worker": "\(hello.name)", "run": "\(Self.cut(previous))"]))]
        }
        guard (1...1024).contains(hello.threads) else {
            counters.malformed += 1
            return [.log(.warning, "dropped a hello with a bad thread count", peer(id, ["worker": "\(hello.name)", "threads": "\(hello.threads)"]))]
        }
        if let over { return farewell(id, name: hello.name, over) }
        missing = missing.filter { $0.value != hello.name }
        var actions: [Action] = []
        if workers[id] != nil { actions += remove(id) }
        workers[id] = Worker(name: hello.name, identity: identity, threads: hello.threads, phase: .loading, lastSeen: now, lastSent: now)
        return actions + [.send(id, Wire.Message(.welcome, run: run, body: welcome)),
                          .log(.info, "worker registering", peer(id, ["threads": "\(hello.threads)"]))]
    }

    mutating func ready(_ id: WorkerID, _ message: Wire.Message, now: Double) -> [Action] {
        guard let r = try? message.decode(Wire.Ready.self) else {
            counters.malformed += 1
            return [.log(.warning, "malformed ready", peer(id))]
        }
        var reason: String?
        if r.datasetFingerprint != datasetFingerprint {
            reason = "dataset fingerprint \(Self.cut(r.datasetFingerprint, 16)) differs from the coordinator's \(datasetFingerprint.prefix(16)): the worker's data is not the run's data"
        } else if r.numericsFingerprint != numericsFingerprint {
            reason = "numerics differ from the coordinator's (worker kernels: \(Self.cut(r.kernel))); results would not be bitwise reproducible. The run's numerics settings travel to every worker, so the difference is the machine or the program: give the run --cpu-kernels (the same kernels on every CPU that has them) or use identical machines, and run the coordinator's MedMAML version everywhere (an older worker may fingerprint less of the run)"
        }
        if let reason {
            counters.refused += 1
            let metadata = peer(id, ["reason": "\(reason)"])
            let actions = remove(id)
            return [.send(id, Wire.Message(.refused, run: run, body: Wire.Notice(reason: reason))),
                    .log(.error, "refused a worker", metadata)] + actions
        }
        workers[id]?.phase = .ready
        return [.log(.info, "worker ready", peer(id, ["threads": "\(workers[id]?.threads ?? 0)", "workers.ready": "\(readyWorkers)"]))]
    }

    /// Forgets a worker and puts its unfinished tasks of the running batch (if any) back in
    /// the queue.
    mutating func remove(_ id: WorkerID) -> [Action] {
        guard let w = workers.removeValue(forKey: id) else { return [] }
        return withBatch { scheduler, batch in
            scheduler.requeue(w.outstanding.keys.sorted(), of: id, in: &batch)
            return []
        }
    }

    /// The same, from a handler that holds the running batch.
    mutating func remove(_ id: WorkerID, batch: inout Batch) {
        guard let w = workers.removeValue(forKey: id) else { return }
        requeue(w.outstanding.keys.sorted(), of: id, in: &batch)
    }

    /// Takes `slots` from worker `id` and puts them back in the queue.
    private mutating func requeue(_ slots: [Int], of id: WorkerID, in batch: inout Batch) {
        for slot in slots {
            batch.assigned[slot]?.remove(id)
            requeue(slot, in: &batch)
        }
    }
}
