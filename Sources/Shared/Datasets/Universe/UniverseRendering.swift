import Core
import RealModule

/// Renders a label map into an image with every appearance parameter drawn per image
/// (domain randomisation, after SynthSeg: Billot et al., Medical Image Analysis 2023): a
/// mean and spread of intensity per class, a texture per class, blur, a multiplicative bias
/// field, a lower acquisition resolution, noise and a gamma curve. So no intensity, contrast
/// or texture belongs to a class, and appearance never tells which task an image serves.
/// The result is normalised to zero mean and unit variance.
enum UniverseRendering {
    static func render(_ anatomy: UniverseAnatomy, rng: inout RandomStream) -> [Float] {
        let size = anatomy.size
        let scale = Float(size) / 32
        let classes = UniverseClass.allCases.count + 1
        var mean = [Float](repeating: 0, count: classes), spread = mean, textureAmount = mean
        for c in 0..<classes {
            mean[c] = rng.unit()
            spread[c] = rng.uniform(0.005, 0.06)
            textureAmount[c] = rng.chance(0.5) ? rng.uniform(0, 0.12) : 0
        }
        let texture = Field.smooth(height: size, width: size, cells: max(2, Int(6 * scale)), rng: &rng)
        var image = Field(height: size, width: size)
        for i in image.values.indices {
            let c = Int(anatomy.labels[i])
            image.values[i] = mean[c] + spread[c] * Float(rng.normal()) + textureAmount[c] * texture.values[i]
        }
        // Partial volume and a lower acquisition resolution: blur, sometimes strongly.
        image.blur(sigma: rng.uniform(0, 0.6) * scale + (rng.chance(0.3) ? rng.uniform(0.3, 0.8) * scale : 0))
        // A smooth multiplicative bias field.
        var bias = Field.smooth(height: size, width: size, cells: 2, rng: &rng)
        bias.blur(sigma: 3 * scale)
        let strength = rng.uniform(0, 0.5)
        for i in image.values.indices { image.values[i] *= Float.exp(strength * bias.values[i]) }
        let noise = rng.uniform(0, 0.06)
        for i in image.values.indices { image.values[i] += noise * Float(rng.normal()) }
        // Gamma on the intensities scaled to [0, 1].
        let low = image.values.min() ?? 0, high = image.values.max() ?? 1
        let gamma = Float.exp(0.4 * Float(rng.normal()))
        let range = max(high - low, 1e-6)
        var pixels = image.values.map { Float.pow(($0 - low) / range, gamma) }
        normalise(&pixels)
        return pixels
    }

    /// Zero mean, unit variance (a constant image stays zero).
    static func normalise(_ x: inout [Float]) {
        var mean: Double = 0
        for v in x { mean += Double(v) }
        mean /= Double(max(x.count, 1))
        var variance: Double = 0
        for v in x { variance += (Double(v) - mean) * (Double(v) - mean) }
        let std = max((variance / Double(max(x.count, 1))).squareRoot(), 1e-6)
        for i in x.indices { x[i] = Float((Double(x[i]) - mean) / std) }
    }
}
