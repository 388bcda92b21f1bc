import Foundation

/// The folder holding the built executables (the test binary sits beside them).
public var executablesFolder: String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
}

public func executable(_ name: String) -> String { executablesFolder + "/" + name }

/// Copies an executable through a close-on-exec descriptor. A process that another test
/// spawns while the copy is written would otherwise inherit the write descriptor and keep
/// it for its life, and executing the copy then fails with "Text file busy" (it did once,
/// in CI, for `StudyTests`' replaced executables).
public func copyExecutable(_ from: String, to: String) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: from))
    let fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            offset += n
        }
    }
}

/// A child process whose output goes to files, with helpers to wait for lines and signal it.
/// Killed (SIGKILL) when released, so a failing test leaves nothing running.
///
/// Started with posix_spawn, an empty signal mask and default signal actions, as a shell would
/// start it: the test runner's threads block most signals, and a blocked mask survives exec, so
/// children started by Foundation's Process could not be interrupted with SIGINT.
public final class ChildProcess: @unchecked Sendable {
    public let stdoutPath: String
    public let stderrPath: String
    public let name: String
    public let pid: Int32
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(_ path: String, _ arguments: [String], name: String, folder: String, environment: [String: String] = [:]) throws {
        self.name = name
        stdoutPath = folder + "/\(name).out"
        stderrPath = folder + "/\(name).err"
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in environment { env[k] = v }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "cannot start \(path): \(String(cString: strerror(status)))"])
        }
        pid = child
    }

    /// Whether the child is still running (reaps it when it has exited).
    public var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return r == 0 }
        // Exit code, or the signal number for a child killed by a signal (as Foundation reports it).
        exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f
        return false
    }

    /// The exit status once the child has exited.
    public var terminationStatus: Int32 {
        _ = isRunning
        lock.lock(); defer { lock.unlock() }
        return exitStatus ?? -1
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits until stderr (or stdout) contains `text`; false on timeout or exit.
    @discardableResult
    public func waitFor(_ text: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderr.contains(text) || stdout.contains(text) { return true }
            if !isRunning { return stderr.contains(text) || stdout.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// Waits for the process to exit and returns its status (nil on timeout).
    public func waitExit(timeout: Double = 120) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(20_000) }
        return isRunning ? nil : terminationStatus
    }

    /// The `final_params_sha256` the coordinator printed.
    public var finalHash: String? {
        stdout.split(separator: "\n").first { $0.hasPrefix("final_params_sha256 ") }.map { String($0.dropFirst(20)) }
    }
}

/// A TCP port that was free a moment ago on loopback.
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Whether `text` (a process's stderr) has a log line with `message` and every `key=value`
/// of `metadata` (swift-log's stream format: `... label : k1=v1 k2=v2 [module] message`).
public func logged(_ text: String, _ message: String, _ metadata: [String: String] = [:]) -> Bool {
    text.split(separator: "\n").contains { line in
        line.contains(message) && metadata.allSatisfy { key, value in
            line.contains(" \(key)=\(value) ") || line.hasSuffix(" \(key)=\(value)")
        }
    }
}

extension ChildProcess {
    /// Waits until stderr has a log line with `message` and `metadata` (see `logged`).
    @discardableResult
    public func waitForLog(_ message: String, _ metadata: [String: String] = [:], timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logged(stderr, message, metadata) { return true }
            if !isRunning { return logged(stderr, message, metadata) }
            usleep(20_000)
        }
        return false
    }
}

/// The repository's root folder (for scripts and files the tests read).
public var repositoryRoot: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}
