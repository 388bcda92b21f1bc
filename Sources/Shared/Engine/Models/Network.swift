import Core

/// A model built for computation: its layers, and every buffer a forward pass, a
/// gradient and a Hessian-vector product need, allocated once for up to `capacity` images.
///
/// Parameters are not stored here: each call takes the flat parameter buffer, so the same
/// network evaluates theta, theta_1, ..., theta_k of an inner loop without copying.
/// Not thread-safe: use one network per thread (they are cheap to build).
public final class Network<Scalar: EngineScalar> {
    public let spec: ModelSpec
    public let layout: ParameterLayout
    public let capacity: Int
    public let shapes: [FeatureShape]
    /// Per node; nil for the input and for a ReLU fused into the GroupNorm before it.
    let layers: [AnyLayer<Scalar>?]
    let workspace: Workspace<Scalar>
    public let loss: SegmentationLoss<Scalar>

    private let values: [Storage<Scalar>]
    private let tangents: [Storage<Scalar>?]
    private let cotangents: [Storage<Scalar>?]
    private let cotangentTangents: [Storage<Scalar>?]
    /// For each node and input slot: add into the input's cotangent instead of writing it.
    private let accumulateFlags: [[Bool]]
    /// Per-node output cotangent of the loss w.r.t. the logits lives in the last node.
    private let masks: Storage<Scalar>

    /// Builds the network. Throws `ModelError` if the spec is invalid.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public init(spec: ModelSpec, capacity: Int) throws(ModelError) {
        BLAS.configure()
        guard capacity > 0, capacity <= 4096 else { throw .invalid("capacity \(capacity) out of range") }
        let shapes = try spec.validate()
        self.spec = spec
        self.shapes = shapes
        self.capacity = capacity
        layout = ParameterLayout(try spec.parameterShapes())

        // A ReLU whose input is a GroupNorm read by nobody else is fused into that GroupNorm.
        var consumers = [Int](repeating: 0, count: spec.nodes.count)
        for node in spec.nodes { for i in node.inputs { consumers[i] += 1 } }
        var fusedInto = [Int?](repeating: nil, count: spec.nodes.count)
        for (index, node) in spec.nodes.enumerated() where node.op == .relu {
            let source = node.inputs[0]
            if case .groupNorm = spec.nodes[source].op, consumers[source] == 1 {
                fusedInto[index] = source
            }
        }
        let fusedReLU = Set(fusedInto.compactMap { $0 })

        var layers: [AnyLayer<Scalar>?] = []
        var columnCount = 0, smallCount = 0
        for (index, node) in spec.nodes.enumerated() {
            guard let definition = node.op.definition, fusedInto[index] == nil else {
                layers.append(nil)
                continue
            }
            let inputs = node.inputs.map { shapes[$0] }
            let layout = self.layout
            let parameters = definition.parameterShapes(inputs: inputs, output: shapes[index]).map {
                Network.spec(layout, node.name + "." + $0.suffix)
            }
            let layer: AnyLayer<Scalar> = definition.makeLayer(LayerNode(
                inputs: inputs, output: shapes[index], parameters: parameters, capacity: capacity,
                fusedReLU: fusedReLU.contains(index)))
            columnCount = max(columnCount, layer.columnCount)
            smallCount = max(smallCount, layer.smallCount)
            layers.append(layer)
        }
        self.layers = layers
        workspace = Workspace(columnCount: columnCount, smallCount: smallCount)

        // A node carries tangents and cotangents only if some parameter lies upstream of it.
        var dependsOnParameters = [Bool](repeating: false, count: spec.nodes.count)
        for (index, node) in spec.nodes.enumerated() {
            dependsOnParameters[index] = !(layers[index]?.parameterSpecs.isEmpty ?? true)
                || node.inputs.contains { dependsOnParameters[$0] }
        }
        // Fused nodes share storage: the GroupNorm writes straight into the ReLU's buffers.
        func make(_ wanted: (Int) -> Bool) -> [Storage<Scalar>?] {
            var result: [Storage<Scalar>?] = []
            for i in shapes.indices {
                if let source = fusedInto[i] {
                    result.append(result[source])
                } else {
                    result.append(wanted(i) ? Storage(count: shapes[i].count * capacity) : nil)
                }
            }
            return result
        }
        values = make { _ in true }.map { $0! }
        tangents = make { dependsOnParameters[$0] }
        cotangents = make { dependsOnParameters[$0] }
        cotangentTangents = make { dependsOnParameters[$0] }
        masks = Storage(count: spec.input.plane * capacity)
        loss = SegmentationLoss(pixels: spec.input.plane, capacity: capacity)

        // In reverse order the last consumer of a node runs first and writes; the rest add.
        var written = [Bool](repeating: false, count: spec.nodes.count)
        var flags = spec.nodes.map { [Bool](repeating: false, count: $0.inputs.count) }
        for index in spec.nodes.indices.reversed() {
            for (slot, source) in spec.nodes[index].inputs.enumerated() {
                flags[index][slot] = written[source]
                written[source] = true
            }
        }
        accumulateFlags = flags
    }

    private static func spec(_ layout: ParameterLayout, _ name: String) -> ParameterSpec {
        let e = layout[name]!
        return ParameterSpec(name: e.name, shape: e.shape, offset: e.offset)
    }

    private func activation(_ i: Int) -> Activation<Scalar> {
        Activation(
            shape: shapes[i], value: values[i].pointer, tangent: tangents[i]?.pointer,
            cotangent: cotangents[i]?.pointer, cotangentTangent: cotangentTangents[i]?.pointer)
    }

    private func io(_ i: Int, batch: Int) -> LayerIO<Scalar> {
        LayerIO(
            batch: batch, inputs: spec.nodes[i].inputs.map(activation), output: activation(i),
            accumulate: accumulateFlags[i], workspace: workspace)
    }

    private func load(images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>?, batch: Int) {
        precondition(batch > 0 && batch <= capacity, "batch \(batch) exceeds capacity \(capacity)")
        values[0].pointer.update(from: images, count: batch * spec.input.count)
        if let m { masks.pointer.update(from: m, count: batch * spec.input.plane) }
    }

    /// Node `i`'s output for the first `batch` images of the last pass (for numerics studies:
    /// `bench numerics`). Nil for a node whose output lives in another node's buffer.
    public func nodeOutput(_ i: Int, batch: Int) -> [Scalar]? {
        guard i < values.count, batch <= capacity else { return nil }
        return Array(UnsafeBufferPointer(start: values[i].pointer, count: batch * shapes[i].count))
    }

    /// Times every layer call and matrix product when set (`bench engine --profile`).
    public var profile: EngineProfile?

    @inline(__always)
    private func run(_ i: Int, _ pass: Pass, batch: Int, _ p: ParameterIO<Scalar>) {
        guard let layer = layers[i] else { return }
        guard let profile else { return layer.run(pass, io(i, batch: batch), p) }
        let kind: EngineProfile.Pass = switch pass {
        case .forward: .forward
        case .forwardWithTangent: .forwardWithTangent
        case .backward: .backward
        case .backwardTangent: .backwardTangent
        }
        profile.measure(node: i, pass: kind) { layer.run(pass, io(i, batch: batch), p) }
    }

    /// The loss's own passes, timed as node `layers.count` when profiling.
    @inline(__always)
    private func timedLoss(_ body: () -> Void) {
        guard let profile else { return body() }
        profile.measure(node: layers.count, pass: .loss, body)
    }

    private func runForward(_ p: ParameterIO<Scalar>, batch: Int, tangent: Bool) {
        for i in 1..<layers.count {
            run(i, tangent ? .forwardWithTangent : .forward, batch: batch, p)
        }
    }

    /// The logits of the last pass (`forward`, `lossValue`, `gradient` or
    /// `hessianVectorProduct`), for its first `batch` images; valid until the next call.
    public var lastLogits: UnsafePointer<Scalar> { UnsafePointer(values[layers.count - 1].pointer) }

    /// Logits for `batch` images [batch, C, H, W] at `parameters`.
    ///
    /// Returns a pointer into the network's own buffer, valid until the next call.
    @discardableResult
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func forward(parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, batch: Int)
        -> UnsafePointer<Scalar>
    {
        load(images: images, masks: nil, batch: batch)
        runForward(ParameterIO(values: parameters), batch: batch, tangent: false)
        return UnsafePointer(values[layers.count - 1].pointer)
    }

    /// The loss at `parameters` without derivatives.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func lossValue(
        parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>,
        batch: Int
    ) -> SegmentationLoss<Scalar>.Value {
        let z = forward(parameters: parameters, images: images, batch: batch)
        return loss.forward(logits: z, masks: m, batch: batch)
    }

    /// The loss and its gradient with respect to the parameters (written to `gradient`).
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func gradient(
        parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>,
        batch: Int, into gradient: UnsafeMutablePointer<Scalar>
    ) -> SegmentationLoss<Scalar>.Value {
        load(images: images, masks: m, batch: batch)
        let p = ParameterIO(values: parameters, gradient: gradient)
        runForward(p, batch: batch, tangent: false)
        let last = layers.count - 1
        var value = SegmentationLoss<Scalar>.Value(total: 0, bce: 0, softDice: 0)
        timedLoss {
            value = loss.forward(logits: values[last].pointer, masks: masks.pointer, batch: batch)
            loss.backward(masks: masks.pointer, batch: batch, into: cotangents[last]!.pointer)
        }
        for i in stride(from: last, through: 1, by: -1) {
            run(i, .backward, batch: batch, p)
        }
        return value
    }

    /// The exact Hessian-vector product H v of the loss at `parameters` along `direction`,
    /// by forward-over-reverse differentiation; also the gradient if `gradient` is given.
    ///
    /// Cost: about three times a forward+backward pass in arithmetic.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func hessianVectorProduct(
        parameters: UnsafePointer<Scalar>, direction: UnsafePointer<Scalar>,
        images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>, batch: Int,
        into product: UnsafeMutablePointer<Scalar>, gradient: UnsafeMutablePointer<Scalar>? = nil
    ) -> SegmentationLoss<Scalar>.Value {
        load(images: images, masks: m, batch: batch)
        let p = ParameterIO(
            values: parameters, direction: direction, gradient: gradient, gradientTangent: product)
        runForward(p, batch: batch, tangent: true)
        let last = layers.count - 1
        var value = SegmentationLoss<Scalar>.Value(total: 0, bce: 0, softDice: 0)
        timedLoss {
            value = loss.forward(logits: values[last].pointer, masks: masks.pointer, batch: batch)
            loss.backward(masks: masks.pointer, batch: batch, into: cotangents[last]!.pointer)
            loss.tangent(masks: masks.pointer, logitTangent: tangents[last]!.pointer, batch: batch,
                         into: cotangentTangents[last]!.pointer)
        }
        for i in stride(from: last, through: 1, by: -1) {
            run(i, .backwardTangent, batch: batch, p)
        }
        return value
    }
}
