import Core
import RealModule

/// Tissue classes of a synthetic scene; each imaging style maps them to intensities.
enum Tissue: UInt8, CaseIterable {
    case air, soft, fat, liver, spleen, kidney, vessel, lesion, bone, fluid, marrow, wall
}

/// A rendered scene: a tissue class per pixel, and a structure label per pixel (0: none).
///
/// A single-structure scene (`init(structure:...)`) labels its one target structure 1. A
/// multi-structure scene (`init(allStructuresWithHeight:...)`) holds every structure at once,
/// each labelled with its `label`, so one image serves a task per structure: the tasks
/// disagree about what is foreground, as the organ tasks of one abdominal CT do.
struct Scene {
    var tissue: [Tissue]
    var labels: [UInt8]
    let height: Int
    let width: Int

    /// The target mask of a single-structure scene.
    var mask: [Float] { mask(label: 1) }

    /// The mask of the structure labelled `label`.
    func mask(label: UInt8) -> [Float] { labels.map { $0 == label ? 1 : 0 } }

    /// The label of `structure` in a multi-structure scene.
    static func label(_ structure: SyntheticStructure) -> UInt8 {
        UInt8(SyntheticStructure.allCases.firstIndex(of: structure)! + 1)
    }

    /// Builds a body cross-section with context organs and the target structure.
    init(structure: SyntheticStructure, height: Int, width: Int, rng: inout RandomStream) {
        self.height = height
        self.width = width
        tissue = [Tissue](repeating: .air, count: height * width)
        labels = [UInt8](repeating: 0, count: height * width)
        let body = drawBody(rng: &rng)

        // Spine-like bone ring at the back, unless the task is itself a ring.
        if structure != .ring && rng.chance(0.8) {
            var spine = Blob.random(cx: body.cx + rng.uniform(-0.02, 0.02), cy: body.cy + 0.24,
                                    radius: rng.uniform(0.05, 0.07), roughness: 0.1, rng: &rng)
            spine.aspect = 1
            paintRing(spine, inner: 0.6, rim: .bone, core: .marrow, label: 0)
        }
        drawContextOrgans(in: body, rng: &rng)

        switch structure {
        case .organ: _ = drawOrgan(in: body, label: 1, rng: &rng)
        case .vessel: drawVessel(in: body, label: 1, rng: &rng)
        case .lesion:
            let host = Blob.random(cx: body.cx + rng.uniform(-0.12, 0.12), cy: body.cy + rng.uniform(-0.1, 0.05),
                                   radius: rng.uniform(0.15, 0.21), roughness: 0.25, rng: &rng)
            paint(host, .liver, label: 0)
            drawLesions(in: host, label: 1, rng: &rng)
        case .ring: drawRing(in: body, label: 1, rng: &rng)
        case .paired: drawPair(in: body, label: 1, rng: &rng)
        }
    }

    /// Builds a body cross-section holding every structure: an organ with lesions inside it,
    /// a pair of kidney-like organs, a ring, and a vessel crossing them (drawn in that order,
    /// later structures covering earlier ones), among context organs. No spine: a bone ring
    /// that is not the ring structure would be an unlabelled look-alike.
    init(allStructuresWithHeight height: Int, width: Int, rng: inout RandomStream) {
        self.height = height
        self.width = width
        tissue = [Tissue](repeating: .air, count: height * width)
        labels = [UInt8](repeating: 0, count: height * width)
        let body = drawBody(rng: &rng)
        drawContextOrgans(in: body, rng: &rng)
        let organ = drawOrgan(in: body, label: Self.label(.organ), rng: &rng)
        drawLesions(in: organ, label: Self.label(.lesion), rng: &rng)
        drawPair(in: body, label: Self.label(.paired), rng: &rng)
        drawRing(in: body, label: Self.label(.ring), rng: &rng)
        drawVessel(in: body, label: Self.label(.vessel), rng: &rng)
    }

    // MARK: Parts

    /// Body outline with a subcutaneous fat layer.
    private mutating func drawBody(rng: inout RandomStream) -> Blob {
        var body = Blob.random(cx: 0.5 + rng.uniform(-0.04, 0.04), cy: 0.5 + rng.uniform(-0.04, 0.04),
                               radius: rng.uniform(0.38, 0.45), roughness: 0.06, rng: &rng)
        body.aspect = rng.uniform(1.05, 1.3)
        body.rotation = rng.uniform(-0.15, 0.15)
        let fatThickness = rng.uniform(0.05, 0.12)
        body.forEachPixel(height: height, width: width) { i, level in
            tissue[i] = level > 1 - fatThickness ? .fat : .soft
        }
        return body
    }

    /// Context organs, drawn before the structures so the structures lie on top.
    private mutating func drawContextOrgans(in body: Blob, rng: inout RandomStream) {
        let contextTissues: [Tissue] = [.liver, .spleen, .kidney, .fluid, .soft]
        for _ in 0..<rng.below(3) + 2 {
            let (u, v) = randomPoint(in: body, margin: 0.25, rng: &rng)
            let blob = Blob.random(cx: u, cy: v, radius: rng.uniform(0.06, 0.13), roughness: 0.25, rng: &rng)
            let t = contextTissues[rng.below(contextTissues.count)]
            blob.forEachPixel(height: height, width: width) { i, _ in if tissue[i] != .air { tissue[i] = t } }
        }
    }

    /// A large textured organ (liver-like); returns its outline.
    private mutating func drawOrgan(in body: Blob, label: UInt8, rng: inout RandomStream) -> Blob {
        let side: Float = rng.chance(0.5) ? -1 : 1
        let blob = Blob.random(cx: body.cx + side * rng.uniform(0.05, 0.14), cy: body.cy + rng.uniform(-0.12, 0.06),
                               radius: rng.uniform(0.12, 0.2), roughness: 0.3, rng: &rng)
        paint(blob, .liver, label: label)
        return blob
    }

    /// An elongated tube, branching half the time.
    private mutating func drawVessel(in body: Blob, label: UInt8, rng: inout RandomStream) {
        let (a, b) = (randomPoint(in: body, margin: 0.2, rng: &rng), randomPoint(in: body, margin: 0.2, rng: &rng))
        let mid = randomPoint(in: body, margin: 0.3, rng: &rng)
        let w = rng.uniform(0.022, 0.045)
        let tube = Tube(p0: a, p1: mid, p2: b, width0: w, width1: w * rng.uniform(0.6, 1.2))
        paint(tube, label: label)
        if rng.chance(0.5) {
            let end = randomPoint(in: body, margin: 0.2, rng: &rng)
            let bend = randomPoint(in: body, margin: 0.3, rng: &rng)
            let t = rng.uniform(0.3, 0.7)
            let start = ((1 - t) * (1 - t) * a.0 + 2 * (1 - t) * t * mid.0 + t * t * b.0,
                         (1 - t) * (1 - t) * a.1 + 2 * (1 - t) * t * mid.1 + t * t * b.1)
            paint(Tube(p0: start, p1: bend, p2: end, width0: w * 0.8, width1: w * 0.5), label: label)
        }
    }

    /// One to three spots inside `host` (which must already be drawn as liver).
    private mutating func drawLesions(in host: Blob, label: UInt8, rng: inout RandomStream) {
        for _ in 0..<(rng.below(3) + 1) {
            var spot = host
            for _ in 0..<20 {
                let angle = rng.uniform(0, 2 * .pi), dist = rng.uniform(0, 0.6) * host.radius
                spot = Blob.random(cx: host.cx + dist * Float.cos(angle), cy: host.cy + dist * Float.sin(angle),
                                   radius: rng.uniform(0.025, 0.055), roughness: 0.2, rng: &rng)
                if host.level(spot.cx, spot.cy) < 0.7 { break }
            }
            spot.forEachPixel(height: height, width: width) { i, _ in
                if tissue[i] == .liver || tissue[i] == .lesion { tissue[i] = .lesion; labels[i] = label }
            }
        }
    }

    /// A rim: bone around marrow, or a cyst wall around fluid.
    private mutating func drawRing(in body: Blob, label: UInt8, rng: inout RandomStream) {
        let (u, v) = randomPoint(in: body, margin: 0.3, rng: &rng)
        let blob = Blob.random(cx: u, cy: v, radius: rng.uniform(0.08, 0.15), roughness: 0.12, rng: &rng)
        let cyst = rng.chance(0.5)
        paintRing(blob, inner: rng.uniform(0.55, 0.8), rim: cyst ? .wall : .bone, core: cyst ? .fluid : .marrow, label: label)
    }

    /// Two mirrored bean-shaped organs (kidney-like), their notches facing the midline.
    private mutating func drawPair(in body: Blob, label: UInt8, rng: inout RandomStream) {
        let dx = rng.uniform(0.13, 0.22), v = body.cy + rng.uniform(-0.02, 0.12)
        let r = rng.uniform(0.06, 0.095)
        for side: Float in [-1, 1] {
            var bean = Blob.random(cx: body.cx + side * (dx + rng.uniform(-0.02, 0.02)), cy: v + rng.uniform(-0.03, 0.03),
                                   radius: r * rng.uniform(0.9, 1.1), roughness: 0.1, rng: &rng)
            bean.aspect = rng.uniform(0.6, 0.8)
            bean.rotation = side * rng.uniform(0.2, 0.6) + .pi / 2
            // The kidney's hilum: a notch facing the midline.
            bean.harmonics[0] = (0.12, side > 0 ? .pi : 0)
            paint(bean, .kidney, label: label)
        }
    }

    // MARK: Painting

    private func randomPoint(in body: Blob, margin: Float, rng: inout RandomStream) -> (Float, Float) {
        for _ in 0..<50 {
            let u = body.cx + rng.uniform(-0.35, 0.35), v = body.cy + rng.uniform(-0.3, 0.3)
            if body.level(u, v) < 1 - margin { return (u, v) }
        }
        return (body.cx, body.cy)
    }

    /// Paints `t` over the body where `blob` is; those pixels take `label` (0 clears them).
    private mutating func paint(_ blob: Blob, _ t: Tissue, label: UInt8) {
        blob.forEachPixel(height: height, width: width) { i, _ in
            guard tissue[i] != .air else { return }
            tissue[i] = t
            labels[i] = label
        }
    }

    /// Paints a vessel; its pixels take `label` unless it is 0 (an unlabelled vessel keeps
    /// what it crosses labelled).
    private mutating func paint(_ tube: Tube, label: UInt8) {
        tube.forEachPixel(height: height, width: width) { i in
            guard tissue[i] != .air else { return }
            tissue[i] = .vessel
            if label != 0 { labels[i] = label }
        }
    }

    /// Paints a ring: only its rim takes `label`; its core is unlabelled.
    private mutating func paintRing(_ blob: Blob, inner: Float, rim: Tissue, core: Tissue, label: UInt8) {
        blob.forEachPixel(height: height, width: width) { i, level in
            guard tissue[i] != .air else { return }
            let isRim = level > inner
            tissue[i] = isRim ? rim : core
            labels[i] = isRim ? label : 0
        }
    }
}
