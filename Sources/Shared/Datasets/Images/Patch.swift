import Core

/// Square patches of a model's input size cut from larger (or smaller) 2D images: what a
/// network trained on patches sees of a resampled slice.
public enum Patch {
    /// A patch's top-left corner in the image (it may lie partly outside: the outside is filled).
    public struct Window: Sendable, Equatable {
        public var top: Int
        public var left: Int
        public init(top: Int, left: Int) {
            self.top = top
            self.left = left
        }
    }

    /// A window of `size` that holds a foreground pixel of `mask` at a random place in it (any
    /// window when the mask is empty), inside the image where the image is large enough.
    public static func window(around mask: [Float], height: Int, width: Int, size: Int, rng: inout RandomStream) -> Window {
        func place(_ at: Int, _ extent: Int) -> Int {
            guard extent > size else { return (extent - size) / 2 }   // centred, with fill around
            let low = max(0, at - size + 1), high = min(at, extent - size)
            return low + rng.below(high - low + 1)
        }
        let foreground = mask.indices.filter { mask[$0] > 0.5 }
        let pixel = foreground.isEmpty ? rng.below(height * width) : foreground[rng.below(foreground.count)]
        return Window(top: place(pixel / width, height), left: place(pixel % width, width))
    }

    /// The `size` x `size` patch of `image` at `window`, `fill` where it lies outside.
    public static func cut(_ image: [Float], height: Int, width: Int, window: Window, size: Int, fill: Float) -> [Float] {
        var out = [Float](repeating: fill, count: size * size)
        for r in 0..<size {
            let y = window.top + r
            guard y >= 0, y < height else { continue }
            for c in 0..<size {
                let x = window.left + c
                if x >= 0, x < width { out[r * size + c] = image[y * width + x] }
            }
        }
        return out
    }
}
