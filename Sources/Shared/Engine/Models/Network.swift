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

    /// How the primal buffers are laid out, for the network's own and for every tape.
    private let plan: Tape.Plan
    /// The network's own primal buffers.
    private let own: Tape
    /// The primal buffers the current pass uses: `own`, or a tape being recorded or replayed.
    private var bound: Tape
    private let tangents: [Storage<Scalar>?]
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
        // What a kept pass must hold: the buffers some layer reads after its forward pass
        // (and the logits, which the loss reads). Fused nodes share storage (the GroupNorm
        // writes straight into the ReLU's buffers), so a buffer is kept if any sharer reads it.
        func root(_ i: Int) -> Int { fusedInto[i].map(root) ?? i }
        var keepsValue = [Bool](repeating: false, count: spec.nodes.count)
        var keepsCotangent = keepsValue
        keepsValue[root(spec.nodes.count - 1)] = true
        for (index, node) in spec.nodes.enumerated() {
            guard let reads = layers[index]?.primalReads else { continue }
            if reads.inputValues { for i in node.inputs { keepsValue[root(i)] = true } }
            if reads.outputValue { keepsValue[root(index)] = true }
            if reads.outputCotangent { keepsCotangent[root(index)] = true }
        }
        plan = Tape.Plan(perImage: shapes.map(\.count), sharedWith: fusedInto,
                         carriesCotangent: dependsOnParameters,
                         stateBytes: layers.map { $0?.stateBytes ?? 0 },
                         keepsValue: keepsValue, keepsCotangent: keepsCotangent)
        own = Tape(plan, capacity: capacity)
        bound = own
        tangents = plan.storages(capacity: capacity) { dependsOnParameters[$0] }
        cotangentTangents = plan.storages(capacity: capacity) { dependsOnParameters[$0] }
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

    /// Bytes of the network's own per-node buffers (values, cotangents, tangents and their
    /// cotangents): allocated, and resident in memory. Large buffers are memory maps whose
    /// pages count only once written, so a network that only runs forward passes holds
    /// little more than its values.
    public var bufferBytes: (allocated: Int, resident: Int) {
        var seen = Set<ObjectIdentifier>(), allocated = 0, resident = 0
        for case let storage? in own.storage + tangents + cotangentTangents
        where seen.insert(ObjectIdentifier(storage)).inserted {
            allocated += storage.count * MemoryLayout<Scalar>.stride
            resident += storage.residentBytes
        }
        return (allocated, resident)
    }

    private static func spec(_ layout: ParameterLayout, _ name: String) -> ParameterSpec {
        let e = layout[name]!
        return ParameterSpec(name: e.name, shape: e.shape, offset: e.offset)
    }

    private func activation(_ i: Int, cotangent: Bool = true) -> Activation<Scalar> {
        Activation(
            shape: shapes[i], value: bound.values[i], tangent: tangents[i]?.pointer,
            cotangent: cotangent ? bound.cotangents[i] : nil, cotangentTangent: cotangentTangents[i]?.pointer)
    }

    /// Node `i`'s buffers. In the tangent passes the input cotangents are left out: they
    /// are final, and the layer must not write them.
    private func io(_ i: Int, batch: Int, pass: Pass) -> LayerIO<Scalar> {
        let writesCotangents = pass == .backward
        return LayerIO(
            batch: batch, inputs: spec.nodes[i].inputs.map { activation($0, cotangent: writesCotangents) },
            output: activation(i), accumulate: accumulateFlags[i], workspace: workspace, state: bound.states[i])
    }

    /// Makes `tape` (or the network's own buffers) the primal buffers of the coming pass.
    private func bind(_ tape: Tape?) {
        if let tape {
            precondition(tape.network === self, "a tape serves only the network that made it")
            bound = tape
        } else {
            bound = own
        }
    }

    private func load(images: UnsafePointer<Scalar>?, masks m: UnsafePointer<Scalar>?, batch: Int) {
        precondition(batch > 0 && batch <= bound.capacity, "batch \(batch) exceeds capacity \(bound.capacity)")
        if let images { bound.values[0].update(from: images, count: batch * spec.input.count) }
        if let m { masks.pointer.update(from: m, count: batch * spec.input.plane) }
    }

    /// Node `i`'s output for the first `batch` images of the last pass on the network's own
    /// buffers (for numerics studies: `bench numerics`); a ReLU fused into its GroupNorm gives
    /// the shared buffer. Nil for a node that does not exist or more images than the last
    /// pass's buffers hold (a tape may hold fewer than the network).
    public func nodeOutput(_ i: Int, batch: Int) -> [Scalar]? {
        guard i >= 0, i < shapes.count, batch >= 0, batch <= bound.capacity else { return nil }
        return Array(UnsafeBufferPointer(start: bound.values[i], count: batch * shapes[i].count))
    }

    /// A tape for this network: room to keep one gradient pass over up to `images` images
    /// (the network's capacity by default; `tapeBytes(images:)` bytes), so that a later
    /// Hessian-vector product at the same point replays it instead of recomputing it.
    public func makeTape(images: Int? = nil) -> Tape {
        let images = images ?? capacity
        precondition(images > 0 && images <= capacity, "a tape for \(images) images on a network for \(capacity)")
        return Tape(plan, capacity: images, network: self, scratch: own)
    }

    /// The bytes one tape for `images` images holds: the values and cotangents some layer
    /// reads after the forward pass (`Layer.primalReads`), and the layers' saved state.
    public func tapeBytes(images: Int? = nil) -> Int { plan.bytes(capacity: images ?? capacity) }

    /// Times every layer call and matrix product when set (`bench engine --profile`).
    public var profile: EngineProfile?

    @inline(__always)
    private func run(_ i: Int, _ pass: Pass, batch: Int, _ p: ParameterIO<Scalar>) {
        guard let layer = layers[i] else { return }
        guard let profile else { return layer.run(pass, io(i, batch: batch, pass: pass), p) }
        let kind: EngineProfile.Pass = switch pass {
        case .forward: .forward
        case .forwardTangent: .forwardTangent
        case .backward: .backward
        case .backwardTangent: .backwardTangent
        }
        profile.measure(node: i, pass: kind) { layer.run(pass, io(i, batch: batch, pass: pass), p) }
    }

    /// The loss's own passes, timed as node `layers.count` when profiling.
    @inline(__always)
    private func timedLoss(_ body: () -> Void) {
        guard let profile else { return body() }
        profile.measure(node: layers.count, pass: .loss, body)
    }

    private func runForward(_ p: ParameterIO<Scalar>, batch: Int) {
        for i in 1..<layers.count { run(i, .forward, batch: batch, p) }
    }

    /// The loss, its cotangent at the logits, and the backward pass (the parameter gradient if
    /// `p.gradient`), after a forward pass.
    private func runBackward(_ p: ParameterIO<Scalar>, batch: Int) -> SegmentationLoss<Scalar>.Value {
        let last = layers.count - 1
        var value = SegmentationLoss<Scalar>.Value(total: 0, bce: 0, softDice: 0)
        timedLoss {
            value = loss.forward(logits: bound.values[last], masks: masks.pointer, batch: batch)
            loss.backward(masks: masks.pointer, batch: batch, into: bound.cotangents[last]!)
        }
        for i in stride(from: last, through: 1, by: -1) { run(i, .backward, batch: batch, p) }
        return value
    }

    /// The logits of the last pass (`forward`, `lossValue`, `gradient` or
    /// `hessianVectorProduct`), for its first `batch` images; valid until the next call.
    public var lastLogits: UnsafePointer<Scalar> { UnsafePointer(bound.values[layers.count - 1]) }

    /// Logits for `batch` images [batch, C, H, W] at `parameters`.
    ///
    /// Returns a pointer into the network's own buffer, valid until the next call.
    @discardableResult
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func forward(parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, batch: Int)
        -> UnsafePointer<Scalar>
    {
        bind(nil)
        load(images: images, masks: nil, batch: batch)
        runForward(ParameterIO(values: parameters), batch: batch)
        return lastLogits
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
    /// With a `tape`, the pass's primal buffers are kept there for a later
    /// `hessianVectorProduct` at the same parameters and images.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func gradient(
        parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>,
        batch: Int, into gradient: UnsafeMutablePointer<Scalar>, recordingInto tape: Tape? = nil
    ) -> SegmentationLoss<Scalar>.Value {
        bind(tape)
        tape?.batch = 0
        load(images: images, masks: m, batch: batch)  // checks the batch against the tape's capacity
        let p = ParameterIO(values: parameters, gradient: gradient)
        runForward(p, batch: batch)
        let value = runBackward(p, batch: batch)
        tape?.batch = batch
        return value
    }

    /// The exact Hessian-vector product H v of the loss at `parameters` along `direction`,
    /// by forward-over-reverse differentiation; also the gradient if `gradient` is given.
    ///
    /// The primal passes are those of `gradient` (so the gradient has the same bits), or,
    /// with `replaying`, the tape a `gradient` call recorded at the same parameters, images
    /// and masks: then only the tangent passes run, and the result has the same bits as
    /// without the tape. (A replay does not give the gradient again: keep the recording
    /// call's.) Cost: about 2.7 times a forward+backward pass in arithmetic, 2 when replaying.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func hessianVectorProduct(
        parameters: UnsafePointer<Scalar>, direction: UnsafePointer<Scalar>,
        images: UnsafePointer<Scalar>, masks m: UnsafePointer<Scalar>, batch: Int,
        into product: UnsafeMutablePointer<Scalar>, gradient: UnsafeMutablePointer<Scalar>? = nil,
        replaying tape: Tape? = nil
    ) -> SegmentationLoss<Scalar>.Value {
        let last = layers.count - 1
        var value: SegmentationLoss<Scalar>.Value
        bind(tape)
        if let tape {
            precondition(gradient == nil, "a replayed pass does not compute the gradient again")
            precondition(tape.batch == batch, "the tape holds a pass over \(tape.batch) images, not \(batch)")
            load(images: nil, masks: m, batch: batch)
            // The loss's own saved state (probabilities and sums) is cheap to recompute.
            value = SegmentationLoss<Scalar>.Value(total: 0, bce: 0, softDice: 0)
            timedLoss { value = loss.forward(logits: bound.values[last], masks: masks.pointer, batch: batch) }
        } else {
            load(images: images, masks: m, batch: batch)
            let primal = ParameterIO(values: parameters, gradient: gradient)
            runForward(primal, batch: batch)
            value = runBackward(primal, batch: batch)
        }
        let p = ParameterIO(values: parameters, direction: direction, gradientTangent: product)
        for i in 1...last { run(i, .forwardTangent, batch: batch, p) }
        timedLoss {
            loss.tangent(masks: masks.pointer, logitTangent: tangents[last]!.pointer, batch: batch,
                         into: cotangentTangents[last]!.pointer)
        }
        for i in stride(from: last, through: 1, by: -1) { run(i, .backwardTangent, batch: batch, p) }
        return value
    }

    // MARK: Features for a head-only inner loop

    /// Runs the network up to the node its output head reads (`ModelSpec.headFeatures`), for
    /// `batch` images, and returns that node's output [batch, C, H, W], valid until the next
    /// pass on the same buffers. With a `tape` the pass is kept there for a later
    /// `backward(featureCotangent:)`.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func features(
        parameters: UnsafePointer<Scalar>, images: UnsafePointer<Scalar>, batch: Int, recordingInto tape: Tape? = nil
    ) -> UnsafePointer<Scalar> {
        guard let f = spec.headFeatures else { preconditionFailure("the model has no linear output head") }
        bind(tape)
        tape?.batch = 0
        load(images: images, masks: nil, batch: batch)
        let p = ParameterIO(values: parameters)
        for i in 1...f { run(i, .forward, batch: batch, p) }
        tape?.batch = batch
        return UnsafePointer(bound.values[f])
    }

    /// The gradient of the body's parameters (every tensor but the head's, which is left as
    /// it was) for a cotangent at the features, after `features` on the same parameters: the
    /// network's own buffers if that pass was, or the `tape` it recorded.
    @_specialize(exported: true, where Scalar == Float)
    @_specialize(exported: true, where Scalar == Double)
    public func backward(
        parameters: UnsafePointer<Scalar>, featureCotangent: UnsafePointer<Scalar>, batch: Int,
        into gradient: UnsafeMutablePointer<Scalar>, replaying tape: Tape? = nil
    ) {
        guard let f = spec.headFeatures else { preconditionFailure("the model has no linear output head") }
        bind(tape)
        if let tape { precondition(tape.batch == batch, "the tape holds a pass over \(tape.batch) images, not \(batch)") }
        precondition(batch > 0 && batch <= bound.capacity, "batch \(batch) exceeds capacity \(bound.capacity)")
        bound.cotangents[f]!.update(from: featureCotangent, count: batch * shapes[f].count)
        let p = ParameterIO(values: parameters, gradient: gradient)
        for i in stride(from: f, through: 1, by: -1) { run(i, .backward, batch: batch, p) }
    }

    /// The primal buffers of one pass: every node's values and cotangents and every layer's
    /// saved state. A network owns one and computes in it by default; `makeTape()` makes
    /// more, so that a meta-learner can keep several inner steps' passes (memory for speed:
    /// `MetaLearner`'s kept steps).
    public final class Tape {
        /// Where each node's buffers come from; shared by a network and its tapes.
        struct Plan {
            let perImage: [Int]
            let sharedWith: [Int?]
            let carriesCotangent: [Bool]
            /// Per layer, for the network's capacity (a layer lays its state out by it).
            let stateBytes: [Int]
            /// Per node (its storage's source for fused nodes): whether a tape keeps the value
            /// and the cotangent, or borrows the network's own buffer as scratch.
            let keepsValue: [Bool]
            let keepsCotangent: [Bool]

            /// Storage per node for `capacity` images (shared with its fused source), nil
            /// where `wanted` is false.
            func storages(capacity: Int, _ wanted: (Int) -> Bool) -> [Storage<Scalar>?] {
                var result: [Storage<Scalar>?] = []
                for i in perImage.indices {
                    if let source = sharedWith[i] {
                        result.append(result[source])
                    } else {
                        result.append(wanted(i) ? Storage(count: perImage[i] * capacity) : nil)
                    }
                }
                return result
            }

            func bytes(capacity: Int) -> Int {
                let stride = MemoryLayout<Scalar>.stride
                var total = 0
                for i in perImage.indices {
                    total += stateBytes[i]
                    guard sharedWith[i] == nil else { continue }
                    let buffers = (keepsValue[i] ? 1 : 0) + (carriesCotangent[i] && keepsCotangent[i] ? 1 : 0)
                    total += perImage[i] * capacity * stride * buffers
                }
                return total
            }
        }

        /// Raw, zeroed, 64-byte aligned memory for one layer's saved state (the layer binds
        /// it to its own type).
        final class StateStorage {
            let pointer: UnsafeMutableRawPointer
            init(bytes: Int) {
                pointer = .allocate(byteCount: max(bytes, 1), alignment: 64)
                pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(bytes, 1))
            }
            deinit { pointer.deallocate() }
        }

        /// The network that made the tape (nil for a network's own buffers).
        weak var network: Network?
        /// The network's own buffers, which a tape borrows for what it does not keep.
        private let scratch: Tape?
        /// The most images a recorded pass may have.
        let capacity: Int
        let values: [UnsafeMutablePointer<Scalar>]
        let cotangents: [UnsafeMutablePointer<Scalar>?]
        let states: [UnsafeMutableRawPointer?]
        /// Images of the pass recorded here (0 if none).
        var batch = 0
        let storage: [Storage<Scalar>?]
        private let stateStorage: [StateStorage?]

        /// Buffers for `capacity` images: all of them for a network's own (`scratch` nil);
        /// for a tape, only those `plan` keeps, the rest borrowed from `scratch`.
        init(_ plan: Plan, capacity: Int, network: Network? = nil, scratch: Tape? = nil) {
            self.network = network
            self.capacity = capacity
            self.scratch = scratch
            let values = plan.storages(capacity: capacity) { scratch == nil || plan.keepsValue[$0] }
            let cotangents = plan.storages(capacity: capacity) {
                plan.carriesCotangent[$0] && (scratch == nil || plan.keepsCotangent[$0])
            }
            stateStorage = plan.stateBytes.map { $0 > 0 ? StateStorage(bytes: $0) : nil }
            self.values = values.indices.map { values[$0]?.pointer ?? scratch!.values[$0] }
            self.cotangents = cotangents.indices.map { cotangents[$0]?.pointer ?? scratch?.cotangents[$0] }
            states = stateStorage.map { $0?.pointer }
            storage = values + cotangents
        }
    }
}
