import Foundation

/// The MedMAML wire protocol between the coordinator (ROUTER) and workers (DEALER).
///
/// Every message is a ZeroMQ multipart message of two or three frames:
///   1. header, 32 bytes: magic "MMAL", version (UInt16 LE), command (UInt8), flags (UInt8,
///      0), run id (16 bytes), step (UInt64 LE);
///   2. body: a JSON object (the command's `Body`), at most `maximumBodySize` bytes;
///   3. payload (PARAMS and RESULT only): raw little-endian Float32 values, one frame.
/// The ROUTER prefixes the worker's routing id as frame 0 on receipt. See docs/PROTOCOL.md.
public enum Wire {
    public static let magic: [UInt8] = Array("MMAL".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 32
    public static let maximumBodySize = 1 << 20

    /// Seconds between heartbeats, in both directions.
    public static let heartbeatInterval = 1.0
    /// Heartbeats a peer may miss before it is declared dead.
    public static let liveness = 5
    /// Silence after which a peer is dead.
    public static let heartbeatExpiry = heartbeatInterval * Double(liveness)
    /// A worker's first reconnect delay after losing the coordinator, doubled up to the maximum.
    public static let reconnectDelay = heartbeatInterval
    public static let reconnectDelayMaximum = heartbeatExpiry * 4

    public enum Command: UInt8, Codable, Sendable, CaseIterable {
        /// worker -> coordinator: register (body `Hello`).
        case hello = 1
        /// coordinator -> worker: the run's specification (body `Welcome`).
        case welcome = 2
        /// worker -> coordinator: data loaded and checked (body `Ready`).
        case ready = 3
        /// coordinator -> worker: not admitted, with the reason (body `Notice`); the worker exits.
        case refused = 4
        /// coordinator -> worker: the meta-parameters of a step (body `Params`, payload).
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

    /// A 128-bit run identifier, random per run, that every message carries.
    public struct RunID: Hashable, Codable, Sendable, CustomStringConvertible {
        public var bytes: [UInt8]
        public static let none = RunID(bytes: Array(repeating: 0, count: 16))
        public init(bytes: [UInt8]) {
            precondition(bytes.count == 16, "a run id is 16 bytes")
            self.bytes = bytes
        }
        /// An unguessable id from the operating system's secure random source.
        public static func random() -> RunID {
            var g = SystemRandomNumberGenerator()
            return RunID(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) })
        }
        public init?(hex: String) {
            let chars = Array(hex.utf8)
            guard chars.count == 32 else { return nil }
            var out: [UInt8] = []
            for i in stride(from: 0, to: 32, by: 2) {
                guard let b = UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
                out.append(b)
            }
            self.init(bytes: out)
        }
        public var description: String { bytes.map { String(format: "%02x", $0) }.joined() }
    }

    // MARK: Bodies

    public struct Hello: Codable, Sendable {
        public var protocolVersion: UInt16
        public var name: String
        public var threads: Int
        /// The run the worker last belonged to, if any: a worker of another run is refused.
        public var previousRun: String?
        public init(name: String, threads: Int, previousRun: String?) {
            protocolVersion = Wire.version
            self.name = name
            self.threads = threads
            self.previousRun = previousRun
        }
    }

    public struct Welcome: Codable, Sendable {
        public var run: RunSpec
        public init(run: RunSpec) { self.run = run }
    }

    public struct Ready: Codable, Sendable {
        public var datasetFingerprint: String
        public var numericsFingerprint: String
        /// The matrix kernels in use (for the refusal message when numerics differ).
        public var kernel: String
        public init(datasetFingerprint: String, numericsFingerprint: String, kernel: String) {
            self.datasetFingerprint = datasetFingerprint
            self.numericsFingerprint = numericsFingerprint
            self.kernel = kernel
        }
    }

    /// A reason, and the task slot it concerns if any (REFUSED, FAILED, RESET, SHUTDOWN).
    public struct Notice: Codable, Sendable {
        public var reason: String
        public var slot: Int?
        public init(reason: String, slot: Int? = nil) {
            self.reason = reason
            self.slot = slot
        }
    }

    public struct Params: Codable, Sendable {
        public var count: Int
        public init(count: Int) { self.count = count }
    }

    public enum TaskKind: String, Codable, Sendable {
        /// The task's meta-gradient at the step's parameters.
        case metaGradient
        /// Adapt to the task and score its query set (meta-test).
        case evaluate
    }

    public struct Task: Codable, Sendable {
        public var slot: Int
        public var kind: TaskKind
        public var ref: TaskRef
        public init(slot: Int, kind: TaskKind, ref: TaskRef) {
            self.slot = slot
            self.kind = kind
            self.ref = ref
        }
    }

    public struct Result: Codable, Sendable {
        public var slot: Int
        public var kind: TaskKind
        public var queryLoss: Float
        public var queryDice: Float
        public var supportLoss: Float
        public var objective: Float
        public var seconds: Double
        public init(slot: Int, kind: TaskKind, queryLoss: Float, queryDice: Float, supportLoss: Float, objective: Float, seconds: Double) {
            self.slot = slot
            self.kind = kind
            self.queryLoss = queryLoss
            self.queryDice = queryDice
            self.supportLoss = supportLoss
            self.objective = objective
            self.seconds = seconds
        }
    }

    public struct Empty: Codable, Sendable { public init() {} }

    // MARK: Messages

    /// A decoded message.
    public struct Message: Sendable {
        public var command: Command
        public var run: RunID
        public var step: UInt64
        public var body: [UInt8]
        public var payload: [Float]?

        public init<B: Encodable>(_ command: Command, run: RunID, step: UInt64 = 0, body: B, payload: [Float]? = nil) {
            self.command = command
            self.run = run
            self.step = step
            self.body = Array(canonicalJSON(body))
            self.payload = payload
        }

        /// Decodes the JSON body as `B`.
        public func decode<B: Decodable>(_: B.Type) throws(WireError) -> B {
            do {
                return try JSONDecoder().decode(B.self, from: Data(body))
            } catch {
                throw .malformed("\(command) body is not a valid \(B.self)")
            }
        }

        /// The frames to send.
        public func encode() -> [[UInt8]] {
            var header = Wire.magic
            header += [UInt8(Wire.version & 0xFF), UInt8(Wire.version >> 8), command.rawValue, 0]
            header += run.bytes
            for k in 0..<8 { header.append(UInt8((step >> (8 * UInt64(k))) & 0xFF)) }
            var frames = [header, body]
            if let payload { frames.append(Wire.floatBytes(payload)) }
            return frames
        }

        /// Parses and validates frames (without the ROUTER's identity frame).
        /// `maximumPayload`: the largest Float32 count accepted.
        public init(frames: [[UInt8]], maximumPayload: Int) throws(WireError) {
            guard frames.count == 2 || frames.count == 3 else { throw .malformed("\(frames.count) frames, expected 2 or 3") }
            let h = frames[0]
            guard h.count == Wire.headerSize else { throw .malformed("header of \(h.count) bytes, expected \(Wire.headerSize)") }
            guard Array(h[0..<4]) == Wire.magic else { throw .malformed("bad magic") }
            let version = UInt16(h[4]) | UInt16(h[5]) << 8
            guard version == Wire.version else { throw .version(version) }
            guard let command = Command(rawValue: h[6]) else { throw .malformed("unknown command \(h[6])") }
            guard h[7] == 0 else { throw .malformed("unknown flags \(h[7])") }
            self.command = command
            run = RunID(bytes: Array(h[8..<24]))
            var s: UInt64 = 0
            for k in 0..<8 { s |= UInt64(h[24 + k]) << (8 * UInt64(k)) }
            step = s
            guard frames[1].count <= Wire.maximumBodySize else { throw .malformed("body of \(frames[1].count) bytes is too large") }
            body = frames[1]
            if command.payload.allowed && (frames.count == 3 || command.payload.required) {
                guard frames.count == 3 else { throw .malformed("\(command) needs a payload frame") }
                let bytes = frames[2]
                guard bytes.count % 4 == 0, bytes.count / 4 <= maximumPayload else {
                    throw .malformed("payload of \(bytes.count) bytes is not a whole number of Float32 values within \(maximumPayload)")
                }
                // Finiteness is checked by the receiver, which knows what the values are for
                // (a NaN gradient is a worker fault tied to a task, not an unreadable message).
                payload = Wire.floats(bytes)
            } else {
                guard frames.count == 2 else { throw .malformed("\(command) carries no payload") }
                payload = nil
            }
        }
    }

    public static func floatBytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { dst in
            for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return out
    }

    public static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in
            (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }
}

/// A message that fails validation; it is counted, logged and dropped.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case version(UInt16)
    case nonFinite

    public var description: String {
        switch self {
        case .malformed(let why): "malformed message: \(why)"
        case .version(let v): "protocol version \(v), this build speaks \(Wire.version)"
        case .nonFinite: "payload contains NaN or infinity"
        }
    }
}
