import Evaluation
import Foundation
import MetaLearning

/// Appends `MetricsRecord`s to a JSON-lines file.
final class MetricsLog {
    let path: String
    private let encoder: JSONEncoder

    init(path: String) {
        self.path = path
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A diverged step's NaN is written as the string "nan" rather than losing the line.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    func append(_ record: MetricsRecord) {
        guard let data = try? encoder.encode(record) else { return }
        let line = data + Data("\n".utf8)
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(line)
            try? handle.close()
        } else {
            FileManager.default.createFile(atPath: path, contents: line)
        }
    }
}
