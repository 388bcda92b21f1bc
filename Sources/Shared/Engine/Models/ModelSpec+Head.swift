extension ModelSpec {
    /// The parameters of the output head, the last node: the last entries of the layout (the
    /// part transfer learning replaces per task).
    public func headRange(_ layout: ParameterLayout) -> Range<Int> {
        guard let last = nodes.last else { return layout.count..<layout.count }
        // The head's own tensors (`<name>.<suffix>`), not those of a node named `<name>.<more>`.
        let entries = layout.entries.filter {
            $0.name.hasPrefix(last.name + ".") && !$0.name.dropFirst(last.name.count + 1).contains(".")
        }
        guard let first = entries.first, let final = entries.last else { return layout.count..<layout.count }
        precondition(final.range.upperBound == layout.count, "the output head's parameters are not the layout's last")
        return first.offset..<final.range.upperBound
    }

    /// The node the output head reads, when the head is a 1x1 convolution with a bias and one
    /// output channel, the last node, reading the node just before it, which nothing else
    /// reads: then the rest of the network computes features the head maps linearly to the
    /// logits, pixel by pixel (a head-only inner loop's requirement). Nil otherwise.
    public var headFeatures: Int? {
        guard nodes.count >= 3, let head = nodes.last,
              case .conv2d(outChannels: 1, kernel: 1, bias: true) = head.op,
              head.inputs == [nodes.count - 2]
        else { return nil }
        let features = nodes.count - 2
        let readers = nodes.dropLast().filter { $0.inputs.contains(features) }
        return readers.isEmpty && hasParameters(upstreamOf: features) ? features : nil
    }

    /// Whether a node with parameters feeds node `index` (or is it).
    func hasParameters(upstreamOf index: Int) -> Bool {
        var seen = Set<Int>(), pending = [index]
        while let i = pending.popLast() {
            guard nodes.indices.contains(i), seen.insert(i).inserted else { continue }
            switch nodes[i].op {
            case .conv2d, .groupNorm: return true
            default: pending.append(contentsOf: nodes[i].inputs)
            }
        }
        return false
    }
}
