import ArgumentParser

/// `--config` and `--print-config`, declared by every command that takes run files so that
/// help shows them; `RunFile.expand` consumes both before the command line is parsed.
public struct RunFileOptions: ParsableArguments {
    @Option(help: "Read options from this YAML run file (keys named as the flags; the command line overrides it).")
    public var config: String?
    @Flag(help: "Print the effective configuration (defaults, run file, command line) as YAML and exit.")
    public var printConfig = false

    public init() {}
}
