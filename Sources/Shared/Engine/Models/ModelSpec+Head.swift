extension ModelSpec {
    /// The parameters of the output head, the last node: the last entries of the layout (the
    /// part transfer learning replaces per task).
    public func headRange(_ layout: ParameterLayout) -> Range<Int> {
        guard let last = nodes.last else { return layout.count..<layout.count }
        let entries = layout.entries.filter { $0.name.hasPrefix(last.name + ".") }
        guard let first = entries.first, let final = entries.last else { return layout.count..<layout.count }
        precondition(final.range.upperBound == layout.count, "the output head's parameters are not the layout's last")
        return first.offset..<final.range.upperBound
    }
}
