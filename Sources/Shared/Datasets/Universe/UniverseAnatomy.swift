import Core
import RealModule

/// The structure classes of the task universe's label maps: the kinds of shape medical
/// images hold (blobs, paired organs, shells, nested and touching structures, tubes, thin
/// layers, small spots), not particular organs. A label map is a partition: every pixel has
/// exactly one class, 0 outside the body.
public enum UniverseClass: UInt8, CaseIterable, Sendable, Comparable {
    /// The body: what of it no other class covers.
    case body = 1
    /// A thin layer along the body's boundary (skin, fat).
    case layer
    /// A large smooth organ.
    case organA
    /// Smaller organs, one or two.
    case organB
    /// Paired elongated organs (left and right).
    case paired
    /// A shell around each paired organ (a cortex or a capsule).
    case shell
    /// A structure nested inside the large organ.
    case core
    /// Small spots inside the organs.
    case lesion
    /// Tubes crossing the body, some branching.
    case vessel
    /// Small round spots anywhere in the body.
    case cyst
    /// A ring (a bone cross-section).
    case ring
    /// What the ring encloses.
    case marrow

    public var name: String {
        switch self {
        case .body: "body"
        case .layer: "layer"
        case .organA: "organ-a"
        case .organB: "organ-b"
        case .paired: "paired"
        case .shell: "shell"
        case .core: "core"
        case .lesion: "lesion"
        case .vessel: "vessel"
        case .cyst: "cyst"
        case .ring: "ring"
        case .marrow: "marrow"
        }
    }

    public init?(name: String) {
        guard let c = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = c
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// Membership of every label value (0...255) in `classes`: a lookup per pixel.
    static func table(_ classes: [UniverseClass]) -> [Bool] {
        var member = [Bool](repeating: false, count: 256)
        for c in classes { member[Int(c.rawValue)] = true }
        return member
    }
}

/// A label map of the task universe, drawn SynthSeg-style from random shapes: a random number
/// of each class, at random places and sizes, painted in an order that makes structures lie
/// inside, around and across each other. Deterministic from its random stream.
public struct UniverseAnatomy: Sendable {
    public let size: Int
    /// Class per pixel (0: outside the body), row-major.
    public var labels: [UInt8]

    /// A new label map of `size` x `size` pixels.
    public init(size: Int, rng: inout RandomStream) {
        self.size = size
        labels = [UInt8](repeating: 0, count: size * size)
        // Widths in pixels are given at 32 pixels and scale with the size.
        let px = Float(size) / 32
        var body = Blob.random(cx: 0.5 + rng.uniform(-0.04, 0.04), cy: 0.5 + rng.uniform(-0.04, 0.04),
                               radius: rng.uniform(0.36, 0.45), roughness: 0.12, rng: &rng)
        body.aspect = rng.uniform(0.8, 1.3)
        paint(body, .body)
        let inside = labels.map { $0 != 0 }
        if rng.chance(0.7) {
            let band = Morphology.subtract(inside, Morphology.erode(inside, size: size, radius: (rng.uniform(1, 2.6) * px).rounded(.down)))
            paint(band, .layer, over: [.body])
        }
        if rng.chance(0.85) {
            let organ = Blob.random(cx: body.cx + rng.uniform(-0.12, 0.12), cy: body.cy + rng.uniform(-0.12, 0.12),
                                    radius: rng.uniform(0.13, 0.21), roughness: 0.3, rng: &rng)
            paint(organ, .organA, over: [.body])
            if rng.chance(0.5) {
                var nested = Blob.random(cx: organ.cx + rng.uniform(-0.3, 0.3) * organ.radius, cy: organ.cy + rng.uniform(-0.3, 0.3) * organ.radius,
                                         radius: organ.radius * rng.uniform(0.3, 0.5), roughness: 0.2, rng: &rng)
                nested.aspect = rng.uniform(0.8, 1.25)
                paint(nested, .core, over: [.organA])
            }
        }
        if rng.chance(0.7) {
            for _ in 0..<(1 + rng.below(2)) {
                let (u, v) = point(in: body, margin: 0.3, rng: &rng)
                paint(Blob.random(cx: u, cy: v, radius: rng.uniform(0.07, 0.12), roughness: 0.25, rng: &rng), .organB, over: [.body, .layer])
            }
        }
        if rng.chance(0.6) {
            let dx = rng.uniform(0.14, 0.22), v = body.cy + rng.uniform(-0.05, 0.15), r = rng.uniform(0.06, 0.09)
            let shell = rng.chance(0.65) ? rng.uniform(1, 2) * px / Float(size) : 0
            for side: Float in [-1, 1] {
                var bean = Blob.random(cx: body.cx + side * (dx + rng.uniform(-0.02, 0.02)), cy: v + rng.uniform(-0.03, 0.03),
                                       radius: r * rng.uniform(0.9, 1.1), roughness: 0.1, rng: &rng)
                bean.aspect = rng.uniform(0.55, 0.75)
                bean.rotation = .pi / 2 + side * rng.uniform(0.1, 0.5)
                if shell > 0 {
                    var outer = bean
                    outer.radius += shell
                    paint(outer, .shell, over: [.body, .layer, .organA, .organB])
                }
                paint(bean, .paired, over: [.body, .layer, .organA, .organB, .shell])
            }
        }
        if rng.chance(0.6) {
            let (u, v) = point(in: body, margin: 0.2, rng: &rng)
            var bone = Blob.random(cx: u, cy: v, radius: rng.uniform(0.06, 0.1), roughness: 0.08, rng: &rng)
            bone.aspect = rng.uniform(0.85, 1.15)
            let thickness = rng.uniform(0.3, 0.5)
            bone.forEachPixel(height: size, width: size, algebraic: true) { i, level in
                guard labels[i] != 0 else { return }
                labels[i] = level > 1 - thickness ? UniverseClass.ring.rawValue : UniverseClass.marrow.rawValue
            }
        }
        if rng.chance(0.8) {
            for _ in 0..<(1 + rng.below(2)) { drawVessel(in: body, px: px, rng: &rng) }
        }
        let organs: [UniverseClass] = [.organA, .organB, .core, .paired]
        if rng.chance(0.6) {
            for _ in 0..<(1 + rng.below(3)) {
                let hosts = labels.indices.filter { organs.contains(UniverseClass(rawValue: labels[$0]) ?? .body) }
                guard !hosts.isEmpty else { break }
                let at = hosts[rng.below(hosts.count)]
                let spot = Blob.random(cx: (Float(at % size) + 0.5) / Float(size), cy: (Float(at / size) + 0.5) / Float(size),
                                       radius: rng.uniform(1.3, 2.4) * px / Float(size), roughness: 0.2, rng: &rng)
                paint(spot, .lesion, over: organs + [.lesion])
            }
        }
        if rng.chance(0.5) {
            for _ in 0..<(1 + rng.below(3)) {
                let (u, v) = point(in: body, margin: 0.15, rng: &rng)
                paint(Blob.random(cx: u, cy: v, radius: rng.uniform(1.2, 2.2) * px / Float(size), roughness: 0.05, rng: &rng), .cyst,
                      over: [.body, .layer, .organB])
            }
        }
    }

    /// The mask of one class.
    public func mask(_ c: UniverseClass) -> [Bool] { labels.map { $0 == c.rawValue } }

    /// The classes present.
    public var classes: Set<UniverseClass> { Set(labels.compactMap { UniverseClass(rawValue: $0) }) }

    // MARK: Drawing

    private func point(in body: Blob, margin: Float, rng: inout RandomStream) -> (Float, Float) {
        for _ in 0..<50 {
            let u = body.cx + rng.uniform(-0.38, 0.38), v = body.cy + rng.uniform(-0.38, 0.38)
            if body.level(u, v) < 1 - margin { return (u, v) }
        }
        return (body.cx, body.cy)
    }

    /// A tube across the body, branching half the time, over everything but the ring.
    private mutating func drawVessel(in body: Blob, px: Float, rng: inout RandomStream) {
        let a = point(in: body, margin: 0.1, rng: &rng), b = point(in: body, margin: 0.1, rng: &rng)
        let mid = point(in: body, margin: 0.3, rng: &rng)
        let w = rng.uniform(1.4, 2.6) * px / Float(size)
        paint(Tube(p0: a, p1: mid, p2: b, width0: w, width1: w * rng.uniform(0.7, 1.1)))
        if rng.chance(0.5) {
            let t = rng.uniform(0.3, 0.7)
            let start = ((1 - t) * (1 - t) * a.0 + 2 * (1 - t) * t * mid.0 + t * t * b.0,
                         (1 - t) * (1 - t) * a.1 + 2 * (1 - t) * t * mid.1 + t * t * b.1)
            paint(Tube(p0: start, p1: point(in: body, margin: 0.3, rng: &rng), p2: point(in: body, margin: 0.1, rng: &rng),
                       width0: w * 0.85, width1: w * 0.7))
        }
    }

    private mutating func paint(_ blob: Blob, _ c: UniverseClass, over: [UniverseClass]? = nil) {
        let allowed = over.map(UniverseClass.table)
        blob.forEachPixel(height: size, width: size, algebraic: true) { i, _ in
            if let allowed, !allowed[Int(labels[i])] { return }
            labels[i] = c.rawValue
        }
    }

    private mutating func paint(_ mask: [Bool], _ c: UniverseClass, over: [UniverseClass]) {
        let allowed = UniverseClass.table(over)
        for i in mask.indices where mask[i] && allowed[Int(labels[i])] { labels[i] = c.rawValue }
    }

    private mutating func paint(_ tube: Tube) {
        tube.forEachPixel(height: size, width: size) { i in
            if labels[i] != 0 && labels[i] != UniverseClass.ring.rawValue && labels[i] != UniverseClass.marrow.rawValue {
                labels[i] = UniverseClass.vessel.rawValue
            }
        }
    }
}
