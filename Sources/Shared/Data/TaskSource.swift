/// Where tasks come from: a list of named tasks and a deterministic way to draw a task sample.
///
/// `sample(task:index:seed:support:query:)` must return the same images for the same
/// arguments on any machine and thread: the coordinator sends workers only a task
/// description (task, sample index, seed), never images.
public protocol TaskSource: Sendable {
    /// Which data this is; workers must agree on it with the coordinator.
    var identity: DatasetIdentity { get }
    /// Per-image shape of the images the source produces (the model input).
    var imageShape: FeatureShape { get }
    /// Stable task names, for example `synthetic/organ/ct` or `Task09_Spleen/label-1/axial`.
    var taskNames: [String] { get }
    /// The default split of tasks into meta-train and meta-test.
    var defaultSplit: TaskSplit { get }
    /// Draws `support` + `query` labelled images of task number `task`.
    func sample(task: Int, index: UInt64, seed: UInt64, support: Int, query: Int) throws(DataError) -> TaskSample
}

/// A dataset's name and a fingerprint of its content (or, for generated data, of the
/// generator and its settings).
public struct DatasetIdentity: Codable, Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var fingerprint: String
    public init(name: String, fingerprint: String) {
        self.name = name
        self.fingerprint = fingerprint
    }
    public var description: String { "\(name) (\(fingerprint.prefix(16)))" }
}

/// Which tasks are for meta-training and which are held out for meta-testing, by glob
/// patterns on task names (`*` matches any run of characters, `?` one character).
public struct TaskSplit: Codable, Hashable, Sendable {
    /// A task matching any of these is held out (meta-test); every other task is meta-train.
    public var testPatterns: [String]

    public init(testPatterns: [String]) { self.testPatterns = testPatterns }

    public func isTest(_ name: String) -> Bool { testPatterns.contains { globMatch($0, name) } }

    /// Indices of meta-train and meta-test tasks.
    public func partition(_ names: [String]) -> (train: [Int], test: [Int]) {
        var train: [Int] = [], test: [Int] = []
        for (i, n) in names.enumerated() { if isTest(n) { test.append(i) } else { train.append(i) } }
        return (train, test)
    }
}

/// Shell-style matching of `*` and `?` (no character classes).
public func globMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
            pi += 1; ti += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi; mark = ti; pi += 1
        } else if star >= 0 {
            pi = star + 1; mark += 1; ti = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}

/// Data that cannot be used, naming the file (or task) and the reason.
public enum DataError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case emptyTask(task: String, reason: String)
    case badRequest(String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot read: \(r)"
        case .invalid(let p, let r): "\(p): \(r)"
        case .unsupported(let p, let r): "\(p): unsupported: \(r)"
        case .emptyTask(let t, let r): "task \(t): \(r)"
        case .badRequest(let r): r
        }
    }
}
