import Core
import Foundation

extension Wire {
    /// A decoded message.
    public struct Message: Sendable {
        public var command: Command
        public var run: RunID
        /// The batch id of the header (see `Wire.BatchID`).
        public var batch: UInt64
        public var body: [UInt8]
        public var payload: [Float]?

        public init<B: Encodable>(_ command: Command, run: RunID, batch: UInt64 = 0, body: B, payload: [Float]? = nil) {
            self.command = command
            self.run = run
            self.batch = batch
            // The bodies are the protocol's own structs, which always encode (non-finite
            // values become strings): a failure here is a programmer error.
            do { self.body = Array(try canonicalJSON(body)) } catch { preconditionFailure("cannot encode a \(B.self) body: \(error)") }
            self.payload = payload
        }

        /// Decodes the JSON body as `B`.
        public func decode<B: Decodable>(_: B.Type) throws(WireError) -> B {
            do {
                return try canonicalDecoder().decode(B.self, from: Data(body))
            } catch {
                throw .malformed("\(command) body is not a valid \(B.self)")
            }
        }

        /// The frames to send.
        public func encode() -> [[UInt8]] {
            var header = Wire.magic
            header += [UInt8(Wire.version & 0xFF), UInt8(Wire.version >> 8), command.rawValue, 0]
            header += run.bytes
            for k in 0..<8 { header.append(UInt8((batch >> (8 * UInt64(k))) & 0xFF)) }
            var frames = [header, body]
            if let payload { frames.append(Wire.floatBytes(payload)) }
            return frames
        }

        /// Parses and validates frames (without the ROUTER's identity frame).
        /// `maximumPayload`: the largest Float32 count accepted.
        public init(frames: [[UInt8]], maximumPayload: Int) throws(WireError) {
            guard frames.count == 2 || frames.count == Wire.maximumFrames else { throw .malformed("\(frames.count) frames, expected 2 or 3") }
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
            batch = s
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
}
