import ArgumentParser

/// The model's input size, to which images are generated or resized.
public struct InputSizeOptions: ParsableArguments {
    public init() {}
    @Option(help: "Model input size: images are generated or resized to this many pixels square, a multiple of 4 (default 64, W1's; the demo's 32).")
    public var imageSize: Int?

    public func validate() throws {
        if let imageSize { try Self.check(imageSize) }
    }

    /// The size, from the flag or the preset.
    public func size(_ preset: Preset = .standard) -> Int { imageSize ?? preset.imageSize }

    /// The sizes the U-Net takes (two 2x2 poolings): refuses any other.
    public static func check(_ size: Int) throws {
        guard (16...1024).contains(size), size % 4 == 0 else { throw ValidationError("--image-size must be a multiple of 4 in 16...1024") }
    }
}
