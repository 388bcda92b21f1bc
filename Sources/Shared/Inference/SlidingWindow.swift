import Core
import Datasets
import Engine
import Foundation

/// Sliding-window inference over a 2D image of any size with a network of fixed input size
/// (as MONAI's `sliding_window_inference` and nnU-Net do): windows overlapping by `overlap`,
/// each window's probabilities weighted by a Gaussian centred on it (sigma = size / 8), so
/// window borders, where the network sees least context, count least. An image smaller than a
/// window is padded with its lowest value.
public struct SlidingWindow: Sendable {
    public let size: Int
    public let overlap: Double
    /// The Gaussian importance of each pixel of a window (at least 1e-3).
    public let weights: [Float]

    public init(size: Int, overlap: Double) {
        precondition(size > 0 && overlap >= 0 && overlap < 1, "bad window")
        self.size = size
        self.overlap = overlap
        let sigma = Double(size) / 8, centre = Double(size - 1) / 2
        var w = [Float](repeating: 0, count: size * size)
        for y in 0..<size {
            for x in 0..<size {
                let d = (Double(y) - centre) * (Double(y) - centre) + (Double(x) - centre) * (Double(x) - centre)
                w[y * size + x] = max(Float(Foundation.exp(-d / (2 * sigma * sigma))), 1e-3)
            }
        }
        weights = w
    }

    /// Window origins along an axis of `extent` pixels: every `step`, the last flush with the end.
    public func origins(_ extent: Int) -> [Int] {
        Self.origins(extent, size: size, overlap: overlap)
    }

    /// The windows of `size` pixels overlapping by `overlap` that cover a `height` x `width`
    /// image, row by row (one centred window along an axis shorter than a window).
    public static func windows(height: Int, width: Int, size: Int, overlap: Double) -> [Patch.Window] {
        origins(height, size: size, overlap: overlap).flatMap { top in
            origins(width, size: size, overlap: overlap).map { Patch.Window(top: top, left: $0) }
        }
    }

    private static func origins(_ extent: Int, size: Int, overlap: Double) -> [Int] {
        guard extent > size else { return [(extent - size) / 2] }
        let step = max(1, Int((Double(size) * (1 - overlap)).rounded(.down)))
        var out = Array(stride(from: 0, to: extent - size, by: step))
        out.append(extent - size)
        return out
    }

    /// Foreground probabilities (sigmoid of the logits) of `network` at `parameters` over an
    /// image of `height` x `width`, windows run `network.capacity` at a time.
    public func probabilities(_ network: Network<Float>, parameters: [Float], image: [Float], height: Int, width: Int) -> [Float] {
        precondition(network.spec.input.height == size && network.spec.input.width == size, "the network's input is not the window")
        var sum = [Float](repeating: 0, count: height * width), weight = sum
        let fill = image.min() ?? 0
        let windows = Self.windows(height: height, width: width, size: size, overlap: overlap)
        var start = 0
        let plane = size * size
        while start < windows.count {
            let batch = Array(windows[start..<min(start + network.capacity, windows.count)])
            var input = [Float]()
            input.reserveCapacity(batch.count * plane)
            for w in batch { input += Patch.cut(image, height: height, width: width, window: w, size: size, fill: fill) }
            let logits = network.forward(parameters: parameters, images: input, batch: batch.count)
            for (b, w) in batch.enumerated() {
                for r in 0..<size {
                    let y = w.top + r
                    guard y >= 0, y < height else { continue }
                    for c in 0..<size {
                        let x = w.left + c
                        guard x >= 0, x < width else { continue }
                        let z: Float = logits[b * plane + r * size + c], g: Float = weights[r * size + c]
                        let p: Float = 1 / (1 + Foundation.exp(-z))
                        sum[y * width + x] += g * p
                        weight[y * width + x] += g
                    }
                }
            }
            start += batch.count
        }
        for i in sum.indices { sum[i] /= max(weight[i], 1e-12) }
        return sum
    }
}
