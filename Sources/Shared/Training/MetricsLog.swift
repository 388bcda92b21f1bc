import Evaluation
import Core
import Foundation
import Logging
import MetaLearning

/// Appends `MetricsRecord`s to a JSON-lines file. A file that cannot be written (a full or
/// read-only disk) costs a warning, not the run: training goes on.
final class MetricsLog {
    let path: String
    private let encoder: JSONEncoder
    private let logger: Logger
    private var failures = 0

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A diverged step's NaN is written as the string "nan" rather than losing the line.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    func append(_ record: MetricsRecord) {
        guard let data = try? encoder.encode(record) else { return }
        do {
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw POSIXFailure("open") }
            defer { close(fd) }
            let line = [UInt8](data) + [0x0A]
            var written = 0
            while written < line.count {
                let n = line.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw POSIXFailure("write") }
                written += n
            }
        } catch {
            failures += 1
            // Said once, then every 100th time: a full disk should not fill the log as well.
            if failures == 1 || failures % 100 == 0 {
                logger.warning("cannot write the metrics file; training goes on", metadata: ["path": "\(path)", "error": "\(error)", "failures": "\(failures)"])
            }
        }
    }

    /// Drops the lines of steps after `step` (a resumed run writes them again).
    func truncate(after step: Int) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let kept = text.split(separator: "\n").filter { line in
            guard let record = try? decoder.decode(MetricsRecord.self, from: Data(line.utf8)) else { return false }
            return record.step <= step
        }
        do {
            try AtomicFile.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: path)
        } catch {
            logger.warning("cannot rewrite the metrics file for the resumed run", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}

/// A failed system call, with errno's text.
struct POSIXFailure: Error, CustomStringConvertible {
    let call: String
    let code = errno
    init(_ call: String) { self.call = call }
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}
