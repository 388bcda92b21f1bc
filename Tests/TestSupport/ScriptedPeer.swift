import Cluster
import Core
import Foundation
import MetaLearning
import Training
import Transport
import Wire

/// A protocol peer whose every message a test scripts: a rogue or broken worker on a real
/// DEALER socket, or (`ScriptedCoordinator`) a rogue coordinator on a real ROUTER socket.
public final class ScriptedWorker {
    public let context = ZMQContext()
    public let socket: ZMQSocket
    public private(set) var run = Wire.RunID.none
    public private(set) var spec: RunSpec?
    public private(set) var parameterCount = 0
    /// Tasks received and not answered, in arrival order.
    public var tasks: [(batch: UInt64, task: Wire.Task)] = []

    public init(endpoint: String, security: SecurityConfig? = nil) throws {
        socket = try ZMQSocket(context, .dealer)
        if let security { try security.configureClient(socket) }
        try socket.connect(endpoint)
    }

    public func send(_ message: Wire.Message) throws { try socket.send(message.encode()) }
    public func send(frames: [[UInt8]]) throws { try socket.send(frames) }

    /// The next valid message within `timeout` seconds (heartbeats answered, tasks recorded).
    public func next(timeout: Double = 10) throws -> Wire.Message? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard try ZMQSocket.poll([socket], timeoutMilliseconds: 50)[0],
                  let frames = try socket.receive(dontWait: true),
                  let m = try? Wire.Message(frames: frames, maximumPayload: Wire.maximumParameterCount)
            else { continue }
            if m.command == .heartbeat { try send(Wire.Message(.heartbeat, run: run, body: Wire.Empty())) }
            if m.command == .task, let t = try? m.decode(Wire.Task.self) { tasks.append((m.batch, t)) }
            return m
        }
        return nil
    }

    /// Waits for a message with `command`, handling the others as `next` does.
    public func wait(for command: Wire.Command, timeout: Double = 30) throws -> Wire.Message? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let m = try next(timeout: deadline.timeIntervalSinceNow), m.command == command { return m }
        }
        return nil
    }

    /// HELLO, WELCOME, then READY with the fingerprints an honest worker would compute.
    public func register(name: String, threads: Int = 1) throws {
        try send(Wire.Message(.hello, run: .none, body: Wire.Hello(name: name, threads: threads, previousRun: nil)))
        // The coordinator computes its numerics fingerprint before it welcomes anyone, which on a
        // loaded machine (a whole suite in parallel) can take well over 30 s.
        guard let welcome = try wait(for: .welcome, timeout: 120) else { throw WireError.malformed("no WELCOME in 120 s") }
        let w = try welcome.decode(Wire.Welcome.self)
        run = Wire.RunID(hex: w.run.runID)!
        let spec = try RunSpec(wire: w.run)
        self.spec = spec
        parameterCount = try MetaLayout(config: spec.training.meta).count
        let source = try spec.dataset.openOnWorker(dataRoot: nil, split: spec.split, logger: testLogger)
        let numerics = try NumericsCheck.fingerprint(run: spec, source: source)
        try send(Wire.Message(.ready, run: run, body: Wire.Ready(datasetFingerprint: source.identity.fingerprint,
                                                                numericsFingerprint: numerics, kernel: "scripted")))
    }

    /// A RESULT for `task` of `batch` with `gradient` (a meta-gradient task) or none.
    public func answer(_ task: Wire.Task, batch: UInt64, gradient: [Float]?, dice: Float = 0.5, loss: Float = 1) throws {
        let r = Wire.Result(slot: task.slot, kind: task.kind, queryLoss: loss, queryDice: dice, supportLoss: loss, objective: loss, seconds: 1)
        try send(Wire.Message(.result, run: run, batch: batch, body: r, payload: task.kind == .metaGradient ? gradient : nil))
    }
}

/// A raw ZMTP 3.0 peer (plain TCP, NULL security) that sends `megabytes` of frames flagged
/// "more" and never a last one: a multipart message that never ends. Returns the bytes sent
/// before the other side closed the connection.
public func sendEndlessMultipart(port: Int, megabytes: Int) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return 0 }
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
    // Greeting: signature, version 3.0, mechanism NULL, as-server 0, filler.
    let greeting: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0] + Array("NULL".utf8)
        + [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 31)
    guard send(greeting) else { return 0 }
    var peer = [UInt8](repeating: 0, count: 64), got = 0
    while got < 64 {
        let n = peer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, 64 - got, 0) }
        guard n > 0 else { return 0 }
        got += n
    }
    func property(_ name: String, _ value: [UInt8]) -> [UInt8] {
        [UInt8(name.utf8.count)] + Array(name.utf8) + withUnsafeBytes(of: UInt32(value.count).bigEndian) { Array($0) } + value
    }
    let ready = [UInt8(5)] + Array("READY".utf8) + property("Socket-Type", Array("DEALER".utf8)) + property("Identity", [])
    guard send([0x04, UInt8(ready.count)] + ready) else { return 0 }
    let frame: [UInt8] = [0x01, 255] + [UInt8](repeating: 0x78, count: 255)   // "more", and never a last frame
    let block = [UInt8]((0..<4096).flatMap { _ in frame })
    var sent = 0
    for _ in 0..<megabytes {
        guard send(block) else { break }
        sent += block.count
    }
    return sent
}
