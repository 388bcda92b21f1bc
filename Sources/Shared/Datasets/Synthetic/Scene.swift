import Core

/// Tissue classes of a synthetic scene; each imaging style maps them to intensities.
enum Tissue: UInt8, CaseIterable {
    case air, soft, fat, liver, spleen, kidney, vessel, lesion, bone, fluid, marrow, wall
}

/// A rendered scene: a tissue label per pixel and the target mask.
struct Scene {
    var tissue: [Tissue]
    var mask: [Float]
    let height: Int
    let width: Int

    /// Builds a body cross-section with context organs and the target structure.
    init(structure: SyntheticStructure, height: Int, width: Int, rng: inout RandomStream) {
        self.height = height
        self.width = width
        tissue = [Tissue](repeating: .air, count: height * width)
        mask = [Float](repeating: 0, count: height * width)

        // Body outline with a subcutaneous fat layer.
        var body = Blob.random(cx: 0.5 + rng.uniform(-0.04, 0.04), cy: 0.5 + rng.uniform(-0.04, 0.04),
                               radius: rng.uniform(0.38, 0.45), roughness: 0.06, rng: &rng)
        body.aspect = rng.uniform(1.05, 1.3)
        body.rotation = rng.uniform(-0.15, 0.15)
        let fatThickness = rng.uniform(0.05, 0.12)
        body.forEachPixel(height: height, width: width) { i, level in
            tissue[i] = level > 1 - fatThickness ? .fat : .soft
        }
        func insideBody(_ u: Float, _ v: Float, margin: Float) -> Bool {
            body.level(u, v) < 1 - margin
        }

        // Spine-like bone ring at the back, unless the task is itself a ring.
        if structure != .ring && rng.chance(0.8) {
            var spine = Blob.random(cx: body.cx + rng.uniform(-0.02, 0.02), cy: body.cy + 0.24,
                                    radius: rng.uniform(0.05, 0.07), roughness: 0.1, rng: &rng)
            spine.aspect = 1
            paintRing(spine, inner: 0.6, rim: .bone, core: .marrow, target: false)
        }

        // Context organs, drawn before the target so the target lies on top.
        let contextTissues: [Tissue] = [.liver, .spleen, .kidney, .fluid, .soft]
        for _ in 0..<rng.below(3) + 2 {
            let (u, v) = randomPoint(in: body, margin: 0.25, rng: &rng)
            let blob = Blob.random(cx: u, cy: v, radius: rng.uniform(0.06, 0.13), roughness: 0.25, rng: &rng)
            let t = contextTissues[rng.below(contextTissues.count)]
            blob.forEachPixel(height: height, width: width) { i, _ in if tissue[i] != .air { tissue[i] = t } }
        }

        switch structure {
        case .organ:
            let side: Float = rng.chance(0.5) ? -1 : 1
            let blob = Blob.random(cx: body.cx + side * rng.uniform(0.05, 0.14), cy: body.cy + rng.uniform(-0.12, 0.06),
                                   radius: rng.uniform(0.12, 0.2), roughness: 0.3, rng: &rng)
            paint(blob, .liver, target: true, within: body)
        case .vessel:
            let (a, b) = (randomPoint(in: body, margin: 0.2, rng: &rng), randomPoint(in: body, margin: 0.2, rng: &rng))
            let mid = randomPoint(in: body, margin: 0.3, rng: &rng)
            let w = rng.uniform(0.022, 0.045)
            let tube = Tube(p0: a, p1: mid, p2: b, width0: w, width1: w * rng.uniform(0.6, 1.2))
            paint(tube, target: true)
            if rng.chance(0.5) {
                let end = randomPoint(in: body, margin: 0.2, rng: &rng)
                let bend = randomPoint(in: body, margin: 0.3, rng: &rng)
                let t = rng.uniform(0.3, 0.7)
                let start = ((1 - t) * (1 - t) * a.0 + 2 * (1 - t) * t * mid.0 + t * t * b.0,
                             (1 - t) * (1 - t) * a.1 + 2 * (1 - t) * t * mid.1 + t * t * b.1)
                paint(Tube(p0: start, p1: bend, p2: end, width0: w * 0.8, width1: w * 0.5), target: true)
            }
        case .lesion:
            let host = Blob.random(cx: body.cx + rng.uniform(-0.12, 0.12), cy: body.cy + rng.uniform(-0.1, 0.05),
                                   radius: rng.uniform(0.15, 0.21), roughness: 0.25, rng: &rng)
            paint(host, .liver, target: false, within: body)
            for _ in 0..<(rng.below(3) + 1) {
                var spot = host
                for _ in 0..<20 {
                    let angle = rng.uniform(0, 2 * .pi), dist = rng.uniform(0, 0.6) * host.radius
                    spot = Blob.random(cx: host.cx + dist * Float.cos(angle), cy: host.cy + dist * Float.sin(angle),
                                       radius: rng.uniform(0.025, 0.055), roughness: 0.2, rng: &rng)
                    if host.level(spot.cx, spot.cy) < 0.7 { break }
                }
                spot.forEachPixel(height: height, width: width) { i, _ in
                    if tissue[i] == .liver || tissue[i] == .lesion { tissue[i] = .lesion; mask[i] = 1 }
                }
            }
        case .ring:
            let (u, v) = randomPoint(in: body, margin: 0.3, rng: &rng)
            let blob = Blob.random(cx: u, cy: v, radius: rng.uniform(0.08, 0.15), roughness: 0.12, rng: &rng)
            let cyst = rng.chance(0.5)
            paintRing(blob, inner: rng.uniform(0.55, 0.8), rim: cyst ? .wall : .bone,
                      core: cyst ? .fluid : .marrow, target: true)
        case .paired:
            let dx = rng.uniform(0.13, 0.22), v = body.cy + rng.uniform(-0.02, 0.12)
            let r = rng.uniform(0.06, 0.095)
            for side: Float in [-1, 1] {
                var bean = Blob.random(cx: body.cx + side * (dx + rng.uniform(-0.02, 0.02)), cy: v + rng.uniform(-0.03, 0.03),
                                       radius: r * rng.uniform(0.9, 1.1), roughness: 0.1, rng: &rng)
                bean.aspect = rng.uniform(0.6, 0.8)
                bean.rotation = side * rng.uniform(0.2, 0.6) + .pi / 2
                // The kidney's hilum: a notch facing the midline.
                bean.harmonics[0] = (0.12, side > 0 ? .pi : 0)
                paint(bean, .kidney, target: true, within: body)
            }
        }
    }

    private func randomPoint(in body: Blob, margin: Float, rng: inout RandomStream) -> (Float, Float) {
        for _ in 0..<50 {
            let u = body.cx + rng.uniform(-0.35, 0.35), v = body.cy + rng.uniform(-0.3, 0.3)
            if body.level(u, v) < 1 - margin { return (u, v) }
        }
        return (body.cx, body.cy)
    }

    private mutating func paint(_ blob: Blob, _ t: Tissue, target: Bool, within body: Blob) {
        blob.forEachPixel(height: height, width: width) { i, _ in
            guard tissue[i] != .air else { return }
            tissue[i] = t
            mask[i] = target ? 1 : 0
        }
    }

    private mutating func paint(_ tube: Tube, target: Bool) {
        tube.forEachPixel(height: height, width: width) { i in
            guard tissue[i] != .air else { return }
            tissue[i] = .vessel
            if target { mask[i] = 1 }
        }
    }

    private mutating func paintRing(_ blob: Blob, inner: Float, rim: Tissue, core: Tissue, target: Bool) {
        blob.forEachPixel(height: height, width: width) { i, level in
            guard tissue[i] != .air else { return }
            let isRim = level > inner
            tissue[i] = isRim ? rim : core
            mask[i] = target && isRim ? 1 : 0
        }
    }
}
