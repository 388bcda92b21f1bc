import Foundation

/// Which tasks are for meta-training and which are held out for meta-testing, by glob
/// patterns on task names, matched by `fnmatch(3)` (`*` matches any run of characters,
/// slashes included; `?` one character; `[...]` a set).
public struct TaskSplit: Codable, Hashable, Sendable {
    /// A task matching any of these is held out (meta-test); every other task is meta-train.
    public var testPatterns: [String]

    public init(testPatterns: [String]) { self.testPatterns = testPatterns }

    public func isTest(_ name: String) -> Bool { testPatterns.contains { TaskSplit.matches($0, name) } }

    /// Indices of meta-train and meta-test tasks.
    public func partition(_ names: [String]) -> (train: [Int], test: [Int]) {
        var train: [Int] = [], test: [Int] = []
        for (i, n) in names.enumerated() { if isTest(n) { test.append(i) } else { train.append(i) } }
        return (train, test)
    }

    /// Whether `name` matches the shell pattern `pattern` (`fnmatch(3)` with no flags).
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        fnmatch(pattern, name, 0) == 0
    }
}
