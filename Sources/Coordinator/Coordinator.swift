import ArgumentParser
import CommandOptions
import Engine
import Foundation
import Service

@main
struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmaml-coordinator",
        abstract: "MedMAML: distributed few-shot medical image segmentation by meta-learning.",
        subcommands: [DemoCommand.self, Study.self, MapCommand.self, Pretrain.self, Train.self, Evaluate.self, Predict.self, Adapt.self, MetaGradientCommand.self, DatasetsCommand.self, Keygen.self, Bench.self])

    /// The commands that take run files (`--config`, `--print-config`).
    static let runFileCommands: [ParsableCommand.Type] = [Train.self, Pretrain.self, Evaluate.self, Study.self, DemoCommand.self, MapCommand.self]

    /// Checks the environment (MEDMAML_GEMM) before any command runs: a bad value is one clear
    /// line. Expands a run file into the command's arguments before they are parsed.
    static func main() {
        do { try BLAS.checkEnvironment() } catch { exit(withError: ValidationError("\(error)")) }
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let name = arguments.first, let command = runFileCommands.first(where: { $0._commandName == name }) {
            let expanded: RunFile.Expanded
            do {
                expanded = try RunFile.expand(Array(arguments.dropFirst()), command: command, commandName: name)
            } catch {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            arguments = [name] + expanded.arguments
            do {
                _ = try parseAsRoot(arguments)
            } catch {
                // A bad value from the run file: say which file and key it came from.
                var message = fullMessage(for: error)
                if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
                if let path = expanded.path, let key = expanded.fromFile.first(where: { message.contains("--\($0)") }) {
                    FileHandle.standardError.write(Data("Error: \(path): '\(key)': \(message)\n".utf8))
                    Foundation.exit(exitCode(for: error).rawValue)
                }
            }
            if expanded.printOnly {
                do { _ = try parseAsRoot(arguments) } catch { exit(withError: error) }
                print(expanded.effective, terminator: "")
                return
            }
        }
        main(arguments)
    }
}
