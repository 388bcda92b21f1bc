import Foundation

/// Which tasks are for meta-training, which for choosing settings (meta-validation), and
/// which are held out for the final report (meta-test), by shell patterns on task names,
/// matched by `fnmatch(3)` (`*` matches any run of characters, slashes included; `?` one
/// character; `[...]` a set). A task matching a test pattern is a test task even if it also
/// matches a validation pattern; every other task is meta-train.
public struct TaskSplit: Codable, Hashable, Sendable {
    /// Meta-validation: never trained on; every choice (recipe, rates, steps, baselines'
    /// settings) is made on these.
    public var validationPatterns: [String]
    /// Meta-test: reported once, after every choice is made.
    public var testPatterns: [String]

    public init(validationPatterns: [String] = [], testPatterns: [String]) {
        self.validationPatterns = validationPatterns
        self.testPatterns = testPatterns
    }

    /// Splits without meta-validation (older checkpoints) decode with none.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        validationPatterns = try c.decodeIfPresent([String].self, forKey: .validationPatterns) ?? []
        testPatterns = try c.decode([String].self, forKey: .testPatterns)
    }

    public enum Role: String, Sendable, CaseIterable {
        case train = "meta-train", validation = "meta-validation", test = "meta-test"
    }

    public func role(of name: String) -> Role {
        if testPatterns.contains(where: { Self.matches($0, name) }) { return .test }
        if validationPatterns.contains(where: { Self.matches($0, name) }) { return .validation }
        return .train
    }

    /// Task numbers by role.
    public struct Partition: Sendable, Equatable {
        public var train: [Int] = []
        public var validation: [Int] = []
        public var test: [Int] = []

        public subscript(role: Role) -> [Int] {
            switch role {
            case .train: train
            case .validation: validation
            case .test: test
            }
        }
    }

    public func partition(_ names: [String]) -> Partition {
        var p = Partition()
        for (i, n) in names.enumerated() {
            switch role(of: n) {
            case .train: p.train.append(i)
            case .validation: p.validation.append(i)
            case .test: p.test.append(i)
            }
        }
        return p
    }

    /// Whether `name` matches the shell pattern `pattern` (`fnmatch(3)` with no flags).
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        fnmatch(pattern, name, 0) == 0
    }
}
