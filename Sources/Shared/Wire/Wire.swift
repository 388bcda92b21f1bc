import Foundation

/// The MedMAML wire protocol between the coordinator (ROUTER) and workers (DEALER): the
/// frame layout, the commands, and every number the protocol runs on, derived from each
/// other where they can be. docs/PROTOCOL.md describes it; the bodies are in
/// `Wire+Bodies.swift` and the run specification in `Wire+RunSpecification.swift`.
///
/// Every message is a ZeroMQ multipart message of two or three frames:
///   1. header, 32 bytes: magic "MMAL", version (UInt16 LE), command (UInt8), flags (UInt8,
///      0), run id (16 bytes), batch id (UInt64 LE);
///   2. body: a JSON object (the command's body), at most `maximumBodySize` bytes;
///   3. payload (PARAMS and RESULT only): raw little-endian Float32 values, one frame.
/// The ROUTER prefixes the worker's routing id as frame 0 on receipt.
public enum Wire {
    // MARK: Frames

    public static let magic: [UInt8] = Array("MMAL".utf8)
    /// 2: the run specification carries meta-validation patterns; 3: the head-only inner
    /// loop; 4: the prototype head (a worker without it would compute plain MAML); 5: the
    /// numerics settings; 6: their precision (a worker without it would compute Float32);
    /// 7: WELCOME carries the coordinator's heartbeat interval, which the worker adopts.
    public static let version: UInt16 = 7
    public static let headerSize = 32
    public static let maximumBodySize = 1 << 20
    /// Frames of a message: header, body and an optional payload.
    public static let maximumFrames = 3
    /// The largest parameter vector (Float32 values) any run may have: 256 Mi values, 1 GiB.
    public static let maximumParameterCount = 1 << 28

    /// The largest message (all frames, in bytes) a socket of a run with `parameterCount`
    /// meta-parameters accepts: one payload of that size, a body and a header, with room.
    public static func maximumMessageSize(parameterCount: Int) -> Int {
        parameterCount * 4 + maximumBodySize + headerSize + 4096
    }

    // MARK: Batches

    /// The batch id in the header of PARAMS, TASK, RESULT and FAILED: the outer step for a
    /// training batch, and `evaluationTag | step` for the held-out evaluation after that step.
    public enum BatchID {
        public static let evaluationTag: UInt64 = 1 << 62

        public static func training(step: Int) -> UInt64 { UInt64(step) }
        public static func evaluation(step: Int) -> UInt64 { evaluationTag | UInt64(step) }
        /// The outer step a batch belongs to.
        public static func step(of batch: UInt64) -> Int { Int(batch & (evaluationTag - 1)) }
        public static func isEvaluation(_ batch: UInt64) -> Bool { batch & evaluationTag != 0 }
    }

    // MARK: Timing

    /// Seconds between heartbeats, in both directions, unless the coordinator says otherwise
    /// (`--heartbeat`, sent in WELCOME).
    public static let heartbeatInterval = 1.0
    /// The heartbeat intervals a coordinator may choose and a worker accepts.
    public static let heartbeatIntervalRange = 0.1...60.0
    /// Heartbeats a peer may miss before it is declared dead.
    public static let liveness = 5

    /// Every liveness time of a run, derived from its heartbeat interval, so that one number
    /// (the coordinator's `--heartbeat`) scales them together on both sides.
    public struct Heartbeat: Sendable, Equatable {
        public var interval: Double
        public init(interval: Double) { self.interval = interval }
        /// Silence after which a peer is dead.
        public var expiry: Double { interval * Double(Wire.liveness) }
        /// A worker's first reconnect delay after losing the coordinator, doubled up to the
        /// maximum.
        public var reconnectDelay: Double { interval }
        public var reconnectDelayMaximum: Double { expiry * 4 }
        /// The backup deadline before any task time has been observed.
        public var initialDeadline: Double { expiry * 4 }
        /// How long a finished run waits for a worker it declared dead to come back and hear
        /// so: one reconnection at the longest delay after the worker noticed the silence.
        public var farewellPeriod: Double { reconnectDelayMaximum + expiry }
    }

    // MARK: Scheduling

    /// No backup copy is made for a task younger than this (seconds).
    public static let minimumDeadline = 5.0
    /// Once task times are known, a task gets a backup after this many times the lower
    /// quartile of recent task times (`Scheduler.deadline`).
    public static let deadlineFactor = 3.0
    /// A task unanswered for this many deadlines is presumed lost and requeued.
    public static let presumedLostFactor = 2.0
    /// Bad results before a worker is quarantined.
    public static let maximumFaults = 3
    /// Tasks per worker thread sent ahead of need, by default.
    public static let defaultPrefetch = 1
    /// A meta-gradient whose norm is more than this many times the median norm of recently
    /// accepted meta-gradients (and of the numerics check's, an honest one) is suspicious: it
    /// is accepted only once a second computation agrees with it bit for bit.
    public static let outlierFactor = 1000.0

    // MARK: Bounds

    /// Longest worker name accepted in HELLO (longer names are refused).
    public static let maximumNameLength = 128
    /// Longest reason quoted from a peer in logs (longer ones are cut).
    public static let maximumReasonLength = 256
    /// Memory (GiB) one compute thread may need for a run's activations and inner-loop
    /// buffers: a worker refuses a specification that needs more.
    public static let maximumThreadMemoryGiB = 16
    /// Memory the coordinator's socket may hold above the coordinator's own use (plus a
    /// gradient frame per worker) before it drops every connection: libzmq cannot bound a
    /// multipart message that never ends (`--memory-budget`).
    public static let defaultMemoryBudget = 1 << 30
    /// Messages the coordinator reads per tick before it attends to timers and signals.
    public static let messagesPerTick = 256

    // MARK: Commands

    public enum Command: UInt8, Codable, Sendable, CaseIterable {
        /// worker -> coordinator: register (body `Hello`).
        case hello = 1
        /// coordinator -> worker: the run's specification (body `Welcome`).
        case welcome = 2
        /// worker -> coordinator: data loaded and checked (body `Ready`).
        case ready = 3
        /// coordinator -> worker: not admitted, with the reason (body `Notice`); the worker exits.
        case refused = 4
        /// coordinator -> worker: the meta-parameters of a batch (body `Params`, payload).
        case params = 5
        /// coordinator -> worker: compute one task (body `Task`).
        case task = 6
        /// worker -> coordinator: a task's outcome (body `Result`, payload for meta-gradients).
        case result = 7
        /// worker -> coordinator: a task could not be computed (body `Notice` with the slot).
        case failed = 8
        /// either way: still alive (empty body `{}`).
        case heartbeat = 9
        /// coordinator -> worker: unknown to this coordinator; register again (body `Notice`).
        case reset = 10
        /// coordinator -> worker: the run is over or the worker is quarantined; exit (body `Notice`).
        case shutdown = 11
        /// worker -> coordinator: leaving (empty body).
        case bye = 12

        /// PARAMS always carries a payload; RESULT does for meta-gradients (not evaluations).
        var payload: (allowed: Bool, required: Bool) {
            switch self {
            case .params: (true, true)
            case .result: (true, false)
            default: (false, false)
            }
        }
    }

    // MARK: Payloads

    /// Float32 values as little-endian bytes (the payload frame).
    public static func floatBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }

    /// The Float32 values of little-endian bytes (`bytes.count / 4` of them).
    public static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in
            (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }
}
