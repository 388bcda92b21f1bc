/// The per-sample shape of an activation: channels x height x width (the batch is separate).
public struct FeatureShape: Hashable, Codable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// Elements per sample.
    public var count: Int { channels * height * width }
    /// Elements per channel plane.
    public var plane: Int { height * width }

    public var description: String { "\(channels)x\(height)x\(width)" }
}
