import Core

/// Deterministic light augmentation of a slice and its mask.
public enum Augmentation {
    public static func apply(image: inout [Float], mask: inout [Float], size: Int, rng: inout RandomStream) {
        let flip = rng.chance(0.5)
        let angle = rng.uniform(-10, 10) * .pi / 180
        let scale = rng.uniform(0.9, 1.1), shift = rng.uniform(-0.1, 0.1)
        let fill = image.min() ?? 0
        let warp = Resample.Warp(angle: angle, flip: flip)
        image = Resample.warp(image, height: size, width: size, warp, nearest: false, fill: fill)
        mask = Resample.warp(mask, height: size, width: size, warp, nearest: true, fill: 0)
        for i in image.indices { image[i] = image[i] * scale + shift }
    }
}
