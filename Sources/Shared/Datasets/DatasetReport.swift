/// A human-readable summary of a task source: tasks, images, label fractions and split.
public struct DatasetReport {
    public let text: String

    public init(source: TaskSource, split: TaskSplit, samples: Int = 4) throws(DataError) {
        var lines = ["dataset \(source.identity.name)  fingerprint \(source.identity.fingerprint.prefix(16))",
                     "image size \(source.imageShape)", ""]
        let partition = split.partition(source.taskNames)
        lines.append("task".padding(toLength: 44, withPad: " ", startingAt: 0) + "split            foreground")
        for (i, name) in source.taskNames.enumerated() {
            let s = try source.sample(task: i, index: 0, seed: 0, support: samples, query: 0)
            let fraction = s.supportMasks.reduce(0, +) / Float(s.supportMasks.count)
            let role = split.role(of: name).rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
            var line = name.padding(toLength: 44, withPad: " ", startingAt: 0) + role + "  "
            line += String(format: "%5.1f%%", 100 * fraction)
            if let d = source as? DescribedSource, let extra = d.details(task: i) { line += "  " + extra }
            lines.append(line)
        }
        lines.append("")
        lines.append("\(partition.train.count) meta-train, \(partition.validation.count) meta-validation and \(partition.test.count) meta-test task(s); validation \(split.validationPatterns), test \(split.testPatterns)")
        text = lines.joined(separator: "\n")
    }
}
