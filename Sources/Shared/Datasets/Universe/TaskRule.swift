import Core

/// A task of the universe is a target defined on the label map: a rule with its parameters
/// (which classes, which relation, how wide). The rules are geometric operations a clinical
/// target might be: a structure or several, a structure inside another, a grown or shrunk
/// structure, its largest part; and, held out from meta-training, its inner wall, the
/// structure with its holes filled, its smaller parts, its surroundings, its parts touching
/// another structure, and the parts that hold another.
public enum TaskRule: String, CaseIterable, Sendable, Codable {
    // Meta-training rules.
    case structure, inside, dilate, erode, largest
    // Meta-validation rules.
    case band, fill, others
    // Meta-test rules.
    case halo, touching, hosts

    /// Which split a rule's tasks belong to: whole rules are held out.
    public var role: TaskSplit.Role {
        switch self {
        case .structure, .inside, .dilate, .erode, .largest: .train
        case .band, .fill, .others: .validation
        case .halo, .touching, .hosts: .test
        }
    }

    /// Whether the rule relates the target's classes to a second set of classes.
    var relates: Bool { [.inside, .touching, .hosts].contains(self) }

    /// The range of the rule's width in pixels at 32 pixels (scaled with the image), for
    /// rules that take one.
    var widthRange: ClosedRange<Float>? {
        switch self {
        case .dilate, .halo: 0.8...3.2
        case .erode, .band: 0.8...2.2
        default: nil
        }
    }

    public static func rules(_ role: TaskSplit.Role) -> [TaskRule] { allCases.filter { $0.role == role } }
}

/// A task type: a rule with its parameters. The space is large (one to three classes, a
/// second set for relations, a continuous width), so a universe can draw as many distinct
/// types as it needs, or fresh ones for every sample.
public struct TaskType: Hashable, Sendable, CustomStringConvertible {
    public var rule: TaskRule
    /// The target's classes (their union), in class order.
    public var classes: [UniverseClass]
    /// The classes a relation refers to (empty for other rules), in class order.
    public var others: [UniverseClass]
    /// In pixels at 32 pixels, one decimal (0 when the rule takes none).
    public var width: Float

    public init(rule: TaskRule, classes: [UniverseClass], others: [UniverseClass] = [], width: Float = 0) {
        self.rule = rule
        self.classes = classes.sorted()
        self.others = others.sorted()
        self.width = width
    }

    /// `rule/classes[/others][/width]`, for example `structure/organ-a+vessel`,
    /// `inside/lesion/organ-a` or `halo/lesion/1.7`.
    public var description: String {
        var parts = [rule.rawValue, classes.map(\.name).joined(separator: "+")]
        if rule.relates { parts.append(others.map(\.name).joined(separator: "+")) }
        if rule.widthRange != nil { parts.append(String(format: "%.1f", width)) }
        return parts.joined(separator: "/")
    }

    /// A type of `rule` with random parameters: one to three distinct classes (one or two per
    /// set for a relation, disjoint sets) and a width in the rule's range, to one decimal.
    public static func random(_ rule: TaskRule, rng: inout RandomStream) -> TaskType {
        var pool = UniverseClass.allCases
        func draw(_ count: Int) -> [UniverseClass] { (0..<count).map { _ in pool.remove(at: rng.below(pool.count)) } }
        let sizes = rule.relates ? [1, 1, 2] : [1, 1, 2, 3]
        let classes = draw(sizes[rng.below(sizes.count)])
        let others = rule.relates ? draw([1, 1, 2][rng.below(3)]) : []
        var width: Float = 0
        if let range = rule.widthRange { width = (rng.uniform(range.lowerBound, range.upperBound) * 10).rounded() / 10 }
        return TaskType(rule: rule, classes: classes, others: others, width: width)
    }

    /// The union of `set`'s classes.
    private static func mask(_ set: [UniverseClass], _ anatomy: UniverseAnatomy) -> [Bool] {
        let member = UniverseClass.table(set)
        return anatomy.labels.map { member[Int($0)] }
    }

    /// The width as a disk radius in pixels of a `size`-pixel image.
    private func radius(_ size: Int) -> Float { width * Float(size) / 32 }

    /// The target on a label map.
    public func target(_ anatomy: UniverseAnatomy) -> [Bool] {
        let size = anatomy.size
        let a = Self.mask(classes, anatomy)
        func b() -> [Bool] { Self.mask(others, anatomy) }
        switch rule {
        case .structure: return a
        case .inside:
            // Parts of A enclosed by B: at least four fifths of their neighbours are B.
            let host = b()
            return Morphology.selectComponents(a, size: size) { pixels in
                let border = Morphology.border(of: pixels, size: size, inside: Set(pixels))
                return !border.isEmpty && border.filter { $0 >= 0 && host[$0] }.count * 5 >= border.count * 4
            }
        case .dilate: return Morphology.dilate(a, size: size, radius: radius(size))
        case .erode: return Morphology.erode(a, size: size, radius: radius(size))
        case .largest:
            let (labels, sizes) = Morphology.components(a, size: size)
            guard let biggest = sizes.indices.max(by: { sizes[$0] < sizes[$1] }) else { return a }
            return labels.map { $0 == biggest }
        case .band: return Morphology.subtract(a, Morphology.erode(a, size: size, radius: radius(size)))
        case .fill: return Morphology.fillHoles(a, size: size)
        case .others:
            let (labels, sizes) = Morphology.components(a, size: size)
            guard let biggest = sizes.indices.max(by: { sizes[$0] < sizes[$1] }) else { return a }
            return labels.map { $0 >= 0 && $0 != biggest }
        case .halo: return Morphology.subtract(Morphology.dilate(a, size: size, radius: radius(size)), a)
        case .touching:
            let other = b()
            return Morphology.selectComponents(a, size: size) { pixels in
                Morphology.border(of: pixels, size: size, inside: Set(pixels)).contains { $0 >= 0 && other[$0] }
            }
        case .hosts:
            // Parts of A that hold some of B in their holes.
            let guest = b()
            return Morphology.selectComponents(a, size: size) { pixels in
                var own = [Bool](repeating: false, count: size * size)
                for i in pixels { own[i] = true }
                let filled = Morphology.fillHoles(own, size: size)
                return guest.indices.contains { guest[$0] && filled[$0] && !own[$0] }
            }
        }
    }

    /// Whether the type is a usable task on `probes`: a target of at least `minimumPixels` on
    /// at least a third of them (a sample redraws an image whose target is empty), at most
    /// half the image on average, and (for every rule but `structure`) not the plain
    /// structure on most of them, so that no type is another in disguise.
    func isUsable(on probes: [UniverseAnatomy], minimumPixels: Int) -> Bool {
        var present = 0, fraction = 0.0, same = 0
        for p in probes {
            let t = target(p)
            let count = t.reduce(0) { $0 + ($1 ? 1 : 0) }
            guard count >= minimumPixels else { continue }
            present += 1
            fraction += Double(count) / Double(t.count)
            if rule != .structure && t == Self.mask(classes, p) { same += 1 }
        }
        return present * 3 >= probes.count && fraction / Double(max(present, 1)) <= 0.5 && same * 2 < max(present, 1)
    }
}
