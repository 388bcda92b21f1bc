import ArgumentParser
import Engine

/// The U-Net's shape (the input size is the data's `--image-size`).
struct ModelOptions: ParsableArguments {
    @Option(help: "U-Net depth (2x2 poolings).") var depth = 2
    @Option(help: "U-Net channels of the first level (default 16, W1's; the demo's 8).") var baseChannels: Int?
    @Option(help: "GroupNorm groups.") var groups = 4

    func validate() throws {
        guard (1...6).contains(depth) else { throw ValidationError("--depth must be in 1...6") }
        if let baseChannels, !(1...512).contains(baseChannels) { throw ValidationError("--base-channels must be in 1...512") }
        guard (1...512).contains(groups) else { throw ValidationError("--groups must be in 1...512") }
    }

    func unet(size: Int, preset: Preset) -> UNetConfig {
        UNetConfig(height: size, width: size, depth: depth, baseChannels: baseChannels ?? preset.baseChannels, groups: groups)
    }
}
