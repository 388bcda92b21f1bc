import Cluster
import Core
import Datasets
import Engine
import Foundation
import Logging
import MetaLearning
import Training
import Transport
import Wire

/// The coordinator's own cost per step with many workers: the real `TrainingRun` (socket
/// loop, scheduler, averaging, Adam) against `workers` simulated workers in this process that
/// answer every task at once with a ready-made W1-sized gradient. One task per worker per step.
public struct ScaleBenchmark {
    public var workers: Int
    public var steps: Int
    public var secure: Bool

    /// Logs go to `logger` (the benchmark's own output is its result).
    public let logger: Logger

    public init(workers: Int, steps: Int, secure: Bool, logger: Logger) {
        self.logger = logger
        self.workers = workers
        self.steps = steps
        self.secure = secure
    }

    public struct Result: Sendable {
        public var secondsPerStep: Double
        public var megabytesPerStep: Double
        public var parameterCount: Int
    }

    public func run() throws -> Result {
        var config = TrainingConfig()
        config.metaBatch = workers
        config.steps = steps
        let source = SyntheticFamily(size: 64)
        let (dataset, _) = try DatasetSpec.open("synthetic", options: VolumeOptions(), logger: logger)
        let spec = RunSpec(runID: RunSpec.randomID(), training: config, dataset: dataset, split: source.defaultSplit, evaluation: EvaluationSpec())
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("medmaml-scale-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let serverKeys = try CurveKeyPair.generate(), clientKeys = try CurveKeyPair.generate()
        let security = secure ? SecurityConfig(keys: serverKeys, authorizedKeys: [clientKeys.publicKey]) : nil
        let backend = DistributedBackend(endpoint: "tcp://127.0.0.1:0", minimumWorkers: workers, security: security, logger: logger)
        let run = try TrainingRun(spec: spec, source: source, backend: backend, outputs: RunOutputs(checkpointFolder: folder), logger: logger)
        let endpoint = Locked<String?>(nil)
        backend.onBound = { endpoint.set($0) }
        let finished = Locked<Swift.Result<RunSummary, Error>?>(nil)
        let coordinator = Thread { finished.set(Swift.Result { try run.run() }) }
        coordinator.stackSize = 8 << 20
        coordinator.start()
        while endpoint.get() == nil && finished.get() == nil { usleep(1000) }
        guard let address = endpoint.get() else { throw MetaConfigError.invalid("the coordinator did not start") }

        // The fingerprints every honest worker would send.
        let numerics = try NumericsCheck.fingerprint(run: spec, source: source)
        let layoutCount = try MetaLayout(config: config.meta).count
        let gradient = [Float](repeating: 1e-4, count: layoutCount)
        let context = ZMQContext()
        let sockets = try (0..<workers).map { _ -> ZMQSocket in
            let s = try ZMQSocket(context, .dealer)
            if secure { try SecurityConfig(keys: clientKeys, serverKey: serverKeys.publicKey).configureClient(s) }
            try s.connect(address)
            try s.send(Wire.Message(.hello, run: .none, body: Wire.Hello(name: "sim", threads: 1, previousRun: nil)).encode())
            return s
        }
        guard let runID = Wire.RunID(hex: spec.runID) else { throw MetaConfigError.invalid("bad run id") }
        var bytes = 0
        while finished.get() == nil {
            let ready = try ZMQSocket.poll(sockets, timeoutMilliseconds: 50)
            for (i, s) in sockets.enumerated() where ready[i] {
                while let frames = try s.receive(dontWait: true), let m = try? Wire.Message(frames: frames, maximumPayload: layoutCount) {
                    bytes += frames.reduce(0) { $0 + $1.count }
                    switch m.command {
                    case .welcome:
                        try s.send(Wire.Message(.ready, run: runID, body: Wire.Ready(datasetFingerprint: dataset.identity.fingerprint,
                                                                                     numericsFingerprint: numerics, kernel: BLAS.kernelDescription)).encode())
                    case .task:
                        let t = try m.decode(Wire.Task.self)
                        let out = Wire.Message(.result, run: runID, batch: m.batch,
                                               body: Wire.Result(slot: t.slot, kind: t.kind, queryLoss: 1, queryDice: 0.5, supportLoss: 1,
                                                                 objective: 1, seconds: 0), payload: gradient).encode()
                        bytes += out.reduce(0) { $0 + $1.count }
                        try s.send(out)
                    case .heartbeat:
                        try s.send(Wire.Message(.heartbeat, run: runID, body: Wire.Empty()).encode())
                    default:
                        break
                    }
                }
            }
        }
        _ = try finished.get()!.get()
        let times = run.reports.dropFirst().map(\.seconds)
        return Result(secondsPerStep: times.reduce(0, +) / Double(max(times.count, 1)),
                      megabytesPerStep: Double(bytes) / Double(steps) / 1e6, parameterCount: layoutCount)
    }
}
