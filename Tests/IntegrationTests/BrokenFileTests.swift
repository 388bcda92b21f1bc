import Foundation
import Testing
import TestSupport
import Training

/// Broken and hostile files and file systems through the real executables: a clear error or
/// a warning, never a trap.
@Suite(.serialized) struct BrokenFileTests {
    let folder = TemporaryFolder()

    func coordinator(_ args: [String], name: String) throws -> ChildProcess {
        try ChildProcess(executable("medmaml-coordinator"), args, name: name, folder: folder.path)
    }

    func expectClearError(_ p: ChildProcess, mentioning fragment: String, _ comment: String = "") {
        let status = p.waitExit(timeout: 120)
        #expect(status != nil && status != 0, "\(comment) succeeded: \(p.stderr)")
        #expect(status != 132 && status != 133 && status != 134 && status != 139, "\(comment) crashed with status \(status ?? -1)")
        #expect(p.stderr.contains(fragment), "\(comment): \(p.stderr)")
        #expect(!p.stderr.contains("Fatal error") && !p.stderr.contains("Backtrace"), "\(comment) trapped: \(p.stderr)")
    }

    /// A dataset.json label key above 255 is a clear error naming the file, not a trap.
    @Test func labelKeyAbove255IsAClearError() throws {
        let root = try folder.copy(fixturePath("decathlon/Task99_Mini"))
        let json = """
            {"name": "Mini", "labels": {"0": "background", "1": "organ", "2": "lesion", "300": "extra"},
             "training": [{"image": "./imagesTr/mini_000.nii.gz", "label": "./labelsTr/mini_000.nii.gz"}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: root + "/dataset.json"))
        let p = try coordinator(["datasets", "inspect", root], name: "inspect-300")
        expectClearError(p, mentioning: "dataset.json", "label 300")
    }

    /// A metrics file that cannot be written (a full disk) is a warning: the run completes,
    /// with its final checkpoint and hash.
    @Test func unwritableMetricsFileIsAWarning() throws {
        let p = try coordinator(["train", "--in-process", "--image-size", "16", "--base-channels", "4", "--support", "2", "--query", "1",
                                 "--meta-batch", "2", "--steps", "3", "--metrics", "/dev/full",
                                 "--checkpoint-dir", folder.path + "/full"], name: "metrics-full")
        #expect(p.waitExit(timeout: 120) == 0, "\(p.stderr)")
        #expect(p.finalHash != nil)
        #expect(p.stderr.contains("metrics"), "no warning about the metrics file: \(p.stderr)")
        #expect(FileManager.default.fileExists(atPath: folder.path + "/full/final.safetensors"))
    }
}
