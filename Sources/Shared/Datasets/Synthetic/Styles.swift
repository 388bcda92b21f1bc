import Core
import RealModule

/// Imaging styles of the synthetic family: how tissue becomes intensity.
public enum SyntheticStyle: String, CaseIterable, Sendable {
    /// Hounsfield-like values, soft-tissue window, Gaussian noise, texture.
    case ct
    /// Relative signal with a smooth bias field and Rician noise.
    case mr
    /// Echogenicity with multiplicative, spatially correlated speckle, depth attenuation,
    /// shadowing behind strong reflectors, and a sector-shaped field of view.
    case ultrasound
    /// Projection-like: summed attenuation, heavy blur, bone and contrast bright.
    case xray

    /// Renders a scene into an image (values roughly in [0, 1] before normalisation).
    func render(_ scene: Scene, rng: inout RandomStream) -> [Float] {
        let h = scene.height, w = scene.width
        let scale = Float(max(h, w)) / 64
        // Per-image contrast variation: each tissue's value is jittered.
        var table = [Float](repeating: 0, count: Tissue.allCases.count)
        for t in Tissue.allCases {
            let (mean, spread) = base(t, rng: &rng)
            table[Int(t.rawValue)] = mean + spread * rng.uniform(-1, 1)
        }
        var image = Field(height: h, width: w)
        for i in image.values.indices { image.values[i] = table[Int(scene.tissue[i].rawValue)] }
        // Organ texture: a fine smooth field on tissue (not air).
        let texture = Field.smooth(height: h, width: w, cells: Int(12 * scale), rng: &rng)
        let textureAmount = rng.uniform(0.02, 0.05)
        for i in image.values.indices where scene.tissue[i] != .air {
            image.values[i] += textureAmount * texture.values[i]
        }
        switch self {
        case .ct:
            image.blur(sigma: 0.6 * scale)
            // Quantum noise of 8-20 HU, then a soft-tissue window (level ~60 HU, width ~400 HU).
            let sigma = rng.uniform(0.008, 0.02)
            for i in image.values.indices { image.values[i] += sigma * Float(rng.normal()) }
            let level = rng.uniform(0.04, 0.08), width = rng.uniform(0.35, 0.45)
            for i in image.values.indices {
                image.values[i] = min(max((image.values[i] - (level - width / 2)) / width, 0), 1)
            }
        case .mr:
            image.blur(sigma: 0.5 * scale)
            var bias = Field.smooth(height: h, width: w, cells: 2, rng: &rng)
            bias.blur(sigma: 4 * scale)
            let strength = rng.uniform(0.15, 0.4)
            let sigma = rng.uniform(0.02, 0.06)
            for i in image.values.indices {
                let s = image.values[i] * Float.exp(strength * bias.values[i])
                let a = s + sigma * Float(rng.normal()), b = sigma * Float(rng.normal())
                image.values[i] = (a * a + b * b).squareRoot()   // Rician magnitude
            }
        case .ultrasound:
            // Speckle: exponential intensity, correlated over a few pixels.
            var speckle = Field(height: h, width: w)
            for i in speckle.values.indices { speckle.values[i] = -Float.log(max(rng.unit(), 1e-6)) }
            speckle.blur(sigma: 0.7 * scale)
            let attenuation = rng.uniform(0.4, 1.0)
            // Acoustic shadow below bright reflectors (bone), column by column from the top.
            for x in 0..<w {
                var shadow: Float = 1
                for y in 0..<h {
                    let i = y * w + x
                    let depth = Float(y) / Float(h)
                    image.values[i] *= speckle.values[i] * shadow * Float.exp(-attenuation * depth)
                    if scene.tissue[i] == .bone { shadow *= 0.85 }
                }
            }
            image.blur(sigma: 0.5 * scale)
            // Log compression and the sector-shaped field of view from the top centre.
            let spread = rng.uniform(0.55, 0.75)
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x
                    let du = (Float(x) + 0.5) / Float(w) - 0.5, dv = (Float(y) + 0.5) / Float(h) + 0.15
                    let angle = Float.atan2(y: du, x: dv), radius = (du * du + dv * dv).squareRoot()
                    let inFan = abs(angle) < spread && radius < 1.12
                    image.values[i] = inFan ? Float.log(onePlus: 12 * max(image.values[i], 0)) / Float.log(13) : 0
                }
            }
        case .xray:
            image.blur(sigma: rng.uniform(0.6, 1.1) * scale)
            var gradient = Field.smooth(height: h, width: w, cells: 1, rng: &rng)
            gradient.blur(sigma: 6 * scale)
            let sigma = rng.uniform(0.01, 0.025)
            for i in image.values.indices {
                let attenuation = image.values[i] + 0.08 * gradient.values[i]
                image.values[i] = 1 - Float.exp(-1.6 * max(attenuation, 0)) + sigma * Float(rng.normal())
            }
        }
        return image.values
    }

    /// Tissue value and its per-image jitter, in the style's own units.
    private func base(_ t: Tissue, rng: inout RandomStream) -> (Float, Float) {
        switch self {
        case .ct:
            // HU / 1000, portal-venous contrast phase. Lesions are hypo- or hyper-dense
            // relative to the liver at random.
            switch t {
            case .air: return (-1, 0)
            case .soft: return (0.05, 0.01)
            case .fat: return (-0.1, 0.02)
            case .liver: return (0.105, 0.015)
            case .spleen: return (0.115, 0.015)
            case .kidney: return (0.17, 0.03)
            case .vessel: return (0.2, 0.04)
            case .lesion: return rng.chance(0.5) ? (0.045, 0.01) : (0.16, 0.015)
            case .bone: return (0.7, 0.2)
            case .fluid: return (0.01, 0.005)
            case .marrow: return (0.25, 0.05)
            case .wall: return (0.14, 0.03)
            }
        case .mr:
            switch t {
            case .air: return (0, 0)
            case .soft: return (0.35, 0.05)
            case .fat: return (0.8, 0.08)
            case .liver: return (0.3, 0.05)
            case .spleen: return (0.45, 0.05)
            case .kidney: return (0.55, 0.07)
            case .vessel: return rng.chance(0.5) ? (0.05, 0.03) : (0.85, 0.05)
            case .lesion: return (0.7, 0.1)
            case .bone: return (0.08, 0.03)
            case .fluid: return (0.95, 0.03)
            case .marrow: return (0.6, 0.08)
            case .wall: return (0.15, 0.05)
            }
        case .ultrasound:
            switch t {
            case .air: return (0, 0)
            case .soft: return (0.35, 0.05)
            case .fat: return (0.55, 0.08)
            case .liver: return (0.6, 0.06)
            case .spleen: return (0.5, 0.05)
            case .kidney: return (0.2, 0.05)
            case .vessel: return (0.04, 0.02)
            case .lesion: return rng.chance(0.5) ? (0.2, 0.05) : (0.75, 0.08)
            case .bone: return (1.0, 0.05)
            case .fluid: return (0.03, 0.02)
            case .marrow: return (0.3, 0.05)
            case .wall: return (0.85, 0.08)
            }
        case .xray:
            // Attenuation along the beam.
            switch t {
            case .air: return (0, 0)
            case .soft: return (0.25, 0.03)
            case .fat: return (0.18, 0.03)
            case .liver: return (0.42, 0.04)
            case .spleen: return (0.36, 0.03)
            case .kidney: return (0.48, 0.04)
            case .vessel: return (0.75, 0.1)
            case .lesion: return (0.62, 0.06)
            case .bone: return (1.0, 0.1)
            case .fluid: return (0.22, 0.03)
            case .marrow: return (0.5, 0.05)
            case .wall: return (0.55, 0.05)
            }
        }
    }
}
