import ArgumentParser
import Engine

/// The U-Net's shape (the input size is the data's `--image-size`).
public struct ModelOptions: ParsableArguments {
    public init() {}
    @Option(help: "U-Net depth (2x2 poolings).") public var depth = 2
    @Option(help: "U-Net channels of the first level (default 16, W1's; the demo's 8).") public var baseChannels: Int?
    @Option(help: "GroupNorm groups.") public var groups = 4

    public func validate() throws {
        guard (1...6).contains(depth) else { throw ValidationError("--depth must be in 1...6") }
        if let baseChannels, !(1...512).contains(baseChannels) { throw ValidationError("--base-channels must be in 1...512") }
        guard (1...512).contains(groups) else { throw ValidationError("--groups must be in 1...512") }
    }

    public func unet(size: Int, preset: Preset) -> UNetConfig {
        UNetConfig(height: size, width: size, depth: depth, baseChannels: baseChannels ?? preset.baseChannels, groups: groups)
    }
}
