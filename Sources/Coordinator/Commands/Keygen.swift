import ArgumentParser
import CommandOptions
import Foundation
import Transport

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public), Z85 text.")
    @Option(help: "Path and base name, for example keys/coordinator.") var out: String

    func run() throws {
        let folder = URL(fileURLWithPath: out).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let pair = try CurveKeyPair.generate()
        try pair.write(base: out)
        print("wrote \(out).key (secret, mode 0600) and \(out).pub")
        print("public-key \(pair.publicKey)")
    }
}
