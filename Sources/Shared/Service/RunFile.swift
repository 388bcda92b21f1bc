import ArgumentParser
import Foundation
import Yams

/// Run files: `--config run.yaml` holds a command's options as YAML, keyed by the flags'
/// names (`meta-batch: 8`, `hold-out: [a/*, b/*]`, `cosine: true`); options given on the
/// command line override the file's. `--print-config` prints the effective configuration
/// (defaults, then the file, then the command line) in the same form and exits; commands that
/// write outputs store it beside them (`run.yaml`) and in their checkpoints, so a run can be
/// reproduced or resumed from its output folder alone.
///
/// Which keys a command takes, and their defaults, come from ArgumentParser's own description
/// of the command, so the run file can never drift from the flags.
public enum RunFile {
    /// The effective configuration of this process's command (YAML), once `expand` ran.
    nonisolated(unsafe) public private(set) static var effective: String?

    /// One option of a command.
    public struct Option: Sendable, Equatable {
        public var name: String
        public var isFlag: Bool
        public var isRepeating: Bool
        public var defaultValue: String?
        /// `--no-<name>` for flags with an inversion.
        public var inverse: String?
    }

    /// Options every run-file command declares and `expand` consumes.
    static let ownOptions: Set<String> = ["config", "print-config", "help", "version", "experimental-dump-help"]

    /// A command's options, from ArgumentParser's description of it.
    public static func options(of command: ParsableCommand.Type) -> [Option] {
        struct Name: Decodable { var kind: String; var name: String }
        struct Argument: Decodable {
            var kind: String
            var isRepeating: Bool
            var names: [Name]?
            var defaultValue: String?
        }
        struct Command: Decodable { var arguments: [Argument]? }
        struct Info: Decodable { var command: Command }
        guard let info = try? JSONDecoder().decode(Info.self, from: Data(command._dumpHelp().utf8)) else { return [] }
        return (info.command.arguments ?? []).compactMap { a in
            guard a.kind == "option" || a.kind == "flag" else { return nil }
            let longs = (a.names ?? []).filter { $0.kind == "long" }.map(\.name)
            guard let name = longs.first(where: { !$0.hasPrefix("no-") }) ?? longs.first, !ownOptions.contains(name) else { return nil }
            let inverse = longs.first { $0 == "no-" + name }
            return Option(name: name, isFlag: a.kind == "flag", isRepeating: a.isRepeating, defaultValue: a.defaultValue, inverse: inverse)
        }
    }

    /// The result of `expand`: the arguments to parse, the effective configuration, and
    /// whether only printing it was asked for.
    public struct Expanded: Sendable {
        public var arguments: [String]
        public var effective: String
        public var printOnly: Bool
        /// The options the run file set (and the command line did not).
        public var fromFile: [String]
        /// The run file, if one was given.
        public var path: String?
    }

    /// Expands `--config FILE` (and notes `--print-config`) in a command's arguments.
    public static func expand(_ arguments: [String], command: ParsableCommand.Type, commandName: String) throws -> Expanded {
        let options = options(of: command)
        var cli: [String] = []
        var configPath: String?
        var printOnly = false
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--print-config" {
                printOnly = true
            } else if a == "--config" {
                guard i + 1 < arguments.count else { throw RunFileError(message: "--config needs a file") }
                configPath = arguments[i + 1]
                i += 1
            } else if a.hasPrefix("--config=") {
                configPath = String(a.dropFirst("--config=".count))
            } else {
                cli.append(a)
            }
            i += 1
        }
        let given = values(in: cli, options: options)
        var fromFile: [String: [String]] = [:]
        if let configPath { fromFile = try read(configPath, options: options) }
        // The file's options first, then the command line's, which win (ArgumentParser keeps
        // the last value of an option); a repeating option given on the command line replaces
        // the file's list rather than adding to it.
        var merged: [String] = []
        for option in options {
            guard let values = fromFile[option.name], given[option.name] == nil else { continue }
            merged += Self.arguments(option, values)
        }
        merged += cli
        var effective: [(Option, [String])] = []
        for option in options {
            if let v = given[option.name] ?? fromFile[option.name] {
                effective.append((option, v))
            } else if let d = option.defaultValue {
                effective.append((option, option.isRepeating ? [] : [d]))
            } else if option.isFlag {
                effective.append((option, ["false"]))
            }
        }
        let text = "# medmaml-coordinator \(commandName): effective configuration (defaults, --config file, command line)\n"
            + (try serialize(effective))
        Self.effective = text
        let fromFileNames = options.map(\.name).filter { fromFile[$0] != nil && given[$0] == nil }
        return Expanded(arguments: merged, effective: text, printOnly: printOnly, fromFile: fromFileNames,
                        path: configPath)
    }

    /// Command-line arguments that give `option` the values `values`.
    static func arguments(_ option: Option, _ values: [String]) -> [String] {
        if option.isFlag {
            let on = values.last.map { ["true", "yes", "on", "1"].contains($0.lowercased()) } ?? false
            if on { return ["--" + option.name] }
            return option.inverse.map { ["--" + $0] } ?? []
        }
        return values.flatMap { ["--" + option.name, $0] }
    }

    /// The values the command line gives each option (flags as "true"/"false").
    static func values(in arguments: [String], options: [Option]) -> [String: [String]] {
        var byName: [String: Option] = [:], inverse: [String: Option] = [:]
        for o in options {
            byName[o.name] = o
            if let n = o.inverse { inverse[n] = o }
        }
        var out: [String: [String]] = [:]
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            guard a.hasPrefix("--") else { continue }
            let body = a.dropFirst(2)
            let name = String(body.split(separator: "=", maxSplits: 1).first ?? "")
            if let o = inverse[name] {
                out[o.name] = ["false"]
            } else if let o = byName[name] {
                if o.isFlag {
                    out[o.name] = ["true"]
                } else {
                    var value: String?
                    if let eq = body.firstIndex(of: "=") {
                        value = String(body[body.index(after: eq)...])
                    } else if i < arguments.count {
                        value = arguments[i]
                        i += 1
                    }
                    if let value { out[o.name] = (o.isRepeating ? out[o.name] ?? [] : []) + [value] }
                }
            }
        }
        return out
    }

    /// Reads a run file: a YAML mapping of option names to values.
    static func read(_ path: String, options: [Option]) throws -> [String: [String]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RunFileError(message: "\(path): cannot read the run file")
        }
        guard data.count <= 1 << 20 else { throw RunFileError(message: "\(path): a run file is at most 1 MB") }
        let root: Node?
        do { root = try Yams.compose(yaml: String(decoding: data, as: UTF8.self)) } catch {
            throw RunFileError(message: "\(path): not valid YAML: \(error)")
        }
        guard let root else { return [:] }
        guard let mapping = root.mapping else {
            throw RunFileError(message: "\(where_(path, root)): a run file is a mapping of option names to values")
        }
        let byName = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0) })
        var out: [String: [String]] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw RunFileError(message: "\(where_(path, keyNode)): option names are strings") }
            guard let option = byName[key] else {
                let known = options.map(\.name).sorted().joined(separator: ", ")
                let hint = options.first { $0.name.replacingOccurrences(of: "-", with: "_") == key || $0.name.replacingOccurrences(of: "-", with: "") == key.lowercased() }
                throw RunFileError(message: "\(where_(path, keyNode)): unknown key '\(key)'"
                                   + (hint.map { " (did you mean '\($0.name)'?)" } ?? "") + "; this command takes: \(known)")
            }
            guard out[key] == nil else { throw RunFileError(message: "\(where_(path, keyNode)): '\(key)' is given twice") }
            switch value {
            case .scalar(let s):
                if value.tag.description == Tag.Name.null.rawValue || s.string == "~" { continue }
                if option.isFlag {
                    guard let b = value.bool else {
                        throw RunFileError(message: "\(where_(path, value)): '\(key)' is a flag: true or false, not '\(s.string)'")
                    }
                    out[key] = [b ? "true" : "false"]
                } else {
                    out[key] = [s.string]
                }
            case .sequence(let items):
                guard option.isRepeating else {
                    throw RunFileError(message: "\(where_(path, value)): '\(key)' takes one value, not a list")
                }
                out[key] = try items.map { item in
                    guard let s = item.scalar?.string else {
                        throw RunFileError(message: "\(where_(path, item)): the items of '\(key)' are plain values")
                    }
                    return s
                }
            default:
                throw RunFileError(message: "\(where_(path, value)): '\(key)' takes a value, not a mapping")
            }
        }
        return out
    }

    private static func where_(_ path: String, _ node: Node) -> String {
        node.mark.map { "\(path):\($0.line):\($0.column)" } ?? path
    }

    /// YAML for the effective configuration, in the command's option order.
    static func serialize(_ entries: [(Option, [String])]) throws -> String {
        func scalar(_ s: String, flag: Bool) -> Node {
            if flag { return Node(s == "true" ? "true" : "false", Tag(.bool)) }
            if Int(s) != nil { return Node(s, Tag(.int)) }
            if Double(s) != nil, s.lowercased() != "nan", !s.lowercased().contains("inf") { return Node(s, Tag(.float)) }
            return Node(s, Tag(.str), .doubleQuoted)
        }
        let pairs: [(Node, Node)] = entries.map { option, values in
            let value = option.isRepeating
                ? Node.sequence(.init(values.map { scalar($0, flag: false) }, Tag(.seq), .flow))
                : scalar(values.last ?? "", flag: option.isFlag)
            return (Node(option.name), value)
        }
        return try Yams.serialize(node: Node.mapping(.init(pairs)))
    }
}

public struct RunFileError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
