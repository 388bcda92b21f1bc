import CFuzzer
import Cluster
import Foundation
import Training
import Wire

// Input: frames, each a 2-byte little-endian length then its bytes (a short last frame takes
// what is left). Every decodable message is decoded as every body it could carry, and a
// WELCOME's run specification is rebuilt and validated as a worker would.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { input, count in
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    var frames: [[UInt8]] = [], offset = 0
    while offset + 2 <= bytes.count && frames.count < 5 {
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
        offset += 2
        let end = min(bytes.count, offset + length)
        frames.append(Array(bytes[offset..<end]))
        offset = end
    }
    guard let message = try? Wire.Message(frames: frames, maximumPayload: 1 << 16) else { return 0 }
    _ = try? message.decode(Wire.Hello.self)
    _ = try? message.decode(Wire.Ready.self)
    _ = try? message.decode(Wire.Notice.self)
    _ = try? message.decode(Wire.Params.self)
    _ = try? message.decode(Wire.Task.self)
    _ = try? message.decode(Wire.Result.self)
    if let welcome = try? message.decode(Wire.Welcome.self) { _ = try? RunSpec(wire: welcome.run) }
    return 0
}
exit(status)
