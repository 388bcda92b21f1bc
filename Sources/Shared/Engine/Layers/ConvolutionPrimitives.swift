import CDNNL

/// oneDNN's own convolution primitives for one Float32 convolution layer of one network:
/// forward, backward data and backward weights, in the blocked layouts the JIT kernels want
/// (nChw8c on AVX2, nChw16c on AVX-512), for an odd kernel larger than 1, stride 1,
/// padding k/2.
///
/// The engine keeps activations NCHW and weights OIHW; each call reorders its operands into
/// the primitive's layout in workspace slots and its results back, except the input x: the
/// forward pass stages it in the layer's saved state (`stateBytes`, kept with the pass's
/// buffers, so a tape keeps it too), and the backward and tangent passes of that pass read
/// it there instead of reordering it again. Even with those reorders W1 runs faster than
/// with im2col + `dnnl_sgemm` (BENCHMARKS.md, "Convolution path"), the convolutions
/// themselves near the one-core `dnnl_sgemm` peak. The tangent rules reuse the same three
/// primitives, since the convolution is bilinear: conv(x-dot, W) + conv(x, W-dot) is a
/// convolution plus a second one whose sum post-op accumulates into the first one's output;
/// the backward tangents add through reorders with a sum post-op. So every product is a
/// primitive call, and every result is the exact derivative, as in `Conv2d`'s im2col path.
///
/// In bf16 precision (`BLAS.Precision`) the primitives take their inputs (x, W, y-bar and
/// their tangents) in bfloat16 and write Float32: the staging reorders round each operand to
/// bfloat16 as it blocks it, so the saved x is half the size, and every output, accumulation
/// and sum post-op stays Float32. The rules are unchanged: each product is the exact
/// derivative of the convolution of the rounded operands.
///
/// With the `winograd` convolution path each of the three primitives uses oneDNN's Winograd
/// F(4x4, 3x3) algorithm where oneDNN has a kernel for it (Float32, AVX-512, 3x3) and the
/// layer's channel counts are multiples of 16, and the direct one otherwise. Which one a
/// layer gets depends only on its shape and the CPU kernels, so every worker of a run makes
/// the same choice. The rules are unchanged: the algorithm computes the same bilinear
/// convolution.
///
/// Primitives are created per batch size on first use (oneDNN's primitive cache makes a
/// second network's creation cheap) with one OpenMP thread, so the kernel and its
/// reduction order never depend on the thread count: the determinism contract holds.
/// Not thread-safe: belongs to one network, which belongs to one thread.
final class ConvolutionPrimitives {
    let inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int, hasBias: Bool
    let precision: BLAS.Precision
    /// Whether the primitives use the Winograd algorithm where oneDNN has it.
    let winograd: Bool
    private var plans: [Int: Plan] = [:]
    /// Bytes of the layer's saved state per pass: a header (the batch of the copy held, 0 if
    /// none) and the forward's input in the primitive's layout for `capacity` images; 0 when
    /// the forward takes the input as it is.
    private(set) var stateBytes = 0
    private static let header = 64

    init(inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int, hasBias: Bool, capacity: Int) {
        precondition(kernel > 1 && kernel % 2 == 1, "oneDNN path is for odd kernels larger than 1")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernel = kernel
        self.hasBias = hasBias
        precision = BLAS.networkPrecision
        // oneDNN's Winograd kernel pads other channel counts to its block of 16, and then runs
        // slower than direct (W1's one-channel first layer: 4-5x slower).
        winograd = BLAS.networkConvolution == .winograd && precision == .float32
            && inChannels % 16 == 0 && outChannels % 16 == 0
        let source = plan(batch: capacity).forwardSource
        stateBytes = source.same ? 0 : Self.header + source.bytes
    }

    /// The forward pass's input x in its layout, saved in `state` for `batch` images: staged
    /// there now (`saving`), or as a later pass of the same forward finds it. Nil when not
    /// saved (the layouts agree, no state, or it does not fit); then x is staged as any operand.
    private func savedSource(_ plan: Plan, _ x: UnsafeRawPointer, state: UnsafeMutableRawPointer?, batch: Int,
                             saving: Bool, _ staging: inout Staging) -> UnsafeRawPointer? {
        guard let state else { return nil }
        let held = state.bindMemory(to: Int.self, capacity: 1)
        let copy = state + Self.header
        if saving {
            guard !plan.forwardSource.same, Self.header + plan.forwardSource.bytes <= stateBytes else {
                held.pointee = 0
                return nil
            }
            plan.forwardSource.importPlain(x, into: copy, stream: staging.stream)
            held.pointee = batch
        } else if held.pointee != batch {
            return nil
        }
        staging.adopt(plan.forwardSource, x, staged: copy)
        return UnsafeRawPointer(copy)
    }

    /// Runs one primitive call, reporting its time and arithmetic to the engine profile if one
    /// is active.
    private func record(batch: Int, _ body: () -> Void) {
        guard let profile = EngineProfile.active else { return body() }
        profile.gemm(m: outChannels, n: batch * height * width, k: inChannels * kernel * kernel, body)
    }

    private func plan(batch: Int) -> Plan {
        if let plan = plans[batch] { return plan }
        let plan = Plan(self, batch: batch)
        plans[batch] = plan
        return plan
    }

    /// y = conv(x, W) + b; x staged in `state` for the later passes.
    func forward(
        x: UnsafeRawPointer, weight: UnsafeRawPointer, bias: UnsafeRawPointer?, y: UnsafeMutableRawPointer,
        batch: Int, state: UnsafeMutableRawPointer?, scratch: PrimitiveScratch
    ) {
        let plan = plan(batch: batch)
        var staging = Staging(scratch)
        let xs = savedSource(plan, x, state: state, batch: batch, saving: true, &staging) ?? staging.stage(plan.forwardSource, x)
        let ws = staging.stage(plan.forwardWeights, weight)
        let ys = staging.output(plan.forwardDestination, y)
        record(batch: batch) { plan.runForward(xs, ws, bias, ys, accumulate: false, scratch) }
        staging.finish(plan.forwardDestination, ys, into: y, adding: false)
    }

    /// y-dot = conv(x-dot, W) + conv(x, W-dot) + b-dot (x-dot nil: zero).
    func forwardTangent(
        x: UnsafeRawPointer, xTangent: UnsafeRawPointer?, weight: UnsafeRawPointer, weightTangent: UnsafeRawPointer,
        biasTangent: UnsafeRawPointer?, yTangent: UnsafeMutableRawPointer, batch: Int,
        state: UnsafeMutableRawPointer?, scratch: PrimitiveScratch
    ) {
        let plan = plan(batch: batch)
        var staging = Staging(scratch)
        let xs = savedSource(plan, x, state: state, batch: batch, saving: false, &staging) ?? staging.stage(plan.forwardSource, x)
        let wts = staging.stage(plan.forwardWeights, weightTangent)
        let yts = staging.output(plan.forwardDestination, yTangent)
        if let xTangent {
            let ws = staging.stage(plan.forwardWeights, weight)
            let xts = staging.stage(plan.forwardSource, xTangent)
            record(batch: batch) { plan.runForward(xts, ws, biasTangent, yts, accumulate: false, scratch) }
            record(batch: batch) { plan.runForward(xs, wts, nil, yts, accumulate: true, scratch) }
        } else {
            record(batch: batch) { plan.runForward(xs, wts, biasTangent, yts, accumulate: false, scratch) }
        }
        staging.finish(plan.forwardDestination, yts, into: yTangent, adding: false)
    }

    /// The backward pass and (when the tangent operands are given) its tangent:
    /// - W-bar = corr(x, y-bar); W-bar-dot = corr(x, y-bar-dot) + corr(x-dot, y-bar)
    /// - x-bar (+)= conv^T(y-bar, W); x-bar-dot (+)= conv^T(y-bar-dot, W) + conv^T(y-bar, W-dot)
    /// Bias gradients are left to the caller.
    func backward(
        x: UnsafeRawPointer, xTangent: UnsafeRawPointer?, weight: UnsafeRawPointer, weightTangent: UnsafeRawPointer?,
        dy: UnsafeRawPointer, dyTangent: UnsafeRawPointer?,
        dx: UnsafeMutableRawPointer?, dxTangent: UnsafeMutableRawPointer?, accumulate: Bool,
        weightGradient: UnsafeMutableRawPointer?, weightGradientTangent: UnsafeMutableRawPointer?,
        batch: Int, state: UnsafeMutableRawPointer?, scratch: PrimitiveScratch
    ) {
        let plan = plan(batch: batch)
        var staging = Staging(scratch)
        // Backward weights takes x in the forward's layout where the layouts agree (the
        // staging finds the saved copy by layout class).
        _ = savedSource(plan, x, state: state, batch: batch, saving: false, &staging)
        bilinear(plan.weightsSource, x, xTangent, plan.weightsDiffDestination, dy, dyTangent,
                 into: plan.weightsDiffWeights, weightGradient, weightGradientTangent, adding: false,
                 &staging, batch: batch) { x, dy, out in plan.runBackwardWeights(x, dy, out, scratch) }
        bilinear(plan.dataWeights, weight, weightTangent, plan.dataDiffDestination, dy, dyTangent,
                 into: plan.dataDiffSource, dx, dxTangent, adding: accumulate,
                 &staging, batch: batch) { w, dy, out in plan.runBackwardData(dy, w, out, scratch) }
    }

    /// For a primitive f bilinear in (a, b): out (+)= f(a, b) and
    /// out-dot (+)= f(a, b-dot) + f(a-dot, b), where a nil tangent is zero and a nil output
    /// is not wanted.
    private func bilinear(
        _ a: Operand, _ aValue: UnsafeRawPointer, _ aTangent: UnsafeRawPointer?,
        _ b: Operand, _ bValue: UnsafeRawPointer, _ bTangent: UnsafeRawPointer?,
        into result: Operand, _ out: UnsafeMutableRawPointer?, _ outTangent: UnsafeMutableRawPointer?, adding: Bool,
        _ staging: inout Staging, batch: Int,
        _ f: (UnsafeRawPointer, UnsafeRawPointer, UnsafeMutableRawPointer) -> Void
    ) {
        let wantTangent = outTangent != nil && (aTangent != nil || bTangent != nil)
        if let outTangent, !wantTangent, !adding {
            outTangent.initializeMemory(as: UInt8.self, repeating: 0, count: result.plainBytes)
        }
        guard out != nil || wantTangent else { return }
        let av = staging.stage(a, aValue), bv = staging.stage(b, bValue)
        let slot = staging.output(result, nil)
        if let out {
            record(batch: batch) { f(av, bv, slot) }
            staging.finish(result, slot, into: out, adding: adding)
        }
        guard let outTangent, wantTangent else { return }
        var written = false
        if let bTangent {
            let bt = staging.stage(b, bTangent)
            record(batch: batch) { f(av, bt, slot) }
            staging.finish(result, slot, into: outTangent, adding: adding)
            written = true
        }
        if let aTangent {
            let at = staging.stage(a, aTangent)
            record(batch: batch) { f(at, bv, slot) }
            staging.finish(result, slot, into: outTangent, adding: adding || written)
        }
    }
}

/// The primitives of one layer for one batch size.
private final class Plan {
    let forwardSource: Operand, forwardWeights: Operand, forwardDestination: Operand
    let dataDiffDestination: Operand, dataWeights: Operand, dataDiffSource: Operand
    let weightsSource: Operand, weightsDiffDestination: Operand, weightsDiffWeights: Operand
    private let forwardBiased: Primitive?
    private let forwardPlain: Primitive
    private let forwardAdding: Primitive
    private let backwardData: Primitive
    private let backwardWeights: Primitive
    private let biasDescriptor: dnnl_memory_desc_t

    /// A created primitive, the layout of its scratchpad, and one memory object per argument
    /// (made on first use; a call only points them at its buffers).
    final class Primitive {
        let primitive: dnnl_primitive_t
        let scratchpad: dnnl_memory_desc_t
        private var memories: [Int32: dnnl_memory_t] = [:]

        init(_ descriptor: dnnl_primitive_desc_t) {
            var primitive: dnnl_primitive_t?
            check(dnnl_primitive_create(&primitive, descriptor), "primitive")
            self.primitive = primitive!
            scratchpad = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0)!.pointee
            dnnl_primitive_desc_destroy(descriptor)
        }

        deinit {
            for memory in memories.values { dnnl_memory_destroy(memory) }
            dnnl_primitive_destroy(primitive)
        }

        /// The memory object of `argument` (whose layout never changes for this primitive),
        /// pointing at `pointer`.
        private func memory(_ argument: Int32, _ descriptor: dnnl_memory_desc_t, _ pointer: UnsafeRawPointer) -> dnnl_memory_t {
            let handle = UnsafeMutableRawPointer(mutating: pointer)
            if let memory = memories[argument] {
                check(dnnl_memory_set_data_handle(memory, handle), "handle")
                return memory
            }
            var descriptor = descriptor
            var memory: dnnl_memory_t?
            check(dnnl_memory_create(&memory, &descriptor, cpuEngine, handle), "memory")
            memories[argument] = memory!
            return memory!
        }

        func run(_ arguments: [(Int32, UnsafeRawPointer, dnnl_memory_desc_t)], _ scratch: PrimitiveScratch) {
            // This thread's OpenMP team size: one, so a call never forks and its kernel is fixed.
            omp_set_num_threads(1)
            var pad = scratchpad
            let padPointer = scratch.scratchpad(bytes: dnnl_memory_desc_get_size(&pad))
            var list = [dnnl_exec_arg_t(arg: Argument.scratchpad, memory: memory(Argument.scratchpad, pad, padPointer))]
            list.reserveCapacity(arguments.count + 1)
            for (argument, pointer, descriptor) in arguments {
                list.append(dnnl_exec_arg_t(arg: argument, memory: memory(argument, descriptor, pointer)))
            }
            check(dnnl_primitive_execute(primitive, scratch.stream, Int32(list.count), list), "execute")
        }
    }
    init(_ layer: ConvolutionPrimitives, batch: Int) {
        omp_set_num_threads(1)
        let k = Int64(layer.kernel), pad = Int64(layer.kernel / 2)
        let sourceDims = [Int64(batch), Int64(layer.inChannels), Int64(layer.height), Int64(layer.width)]
        let destinationDims = [Int64(batch), Int64(layer.outChannels), Int64(layer.height), Int64(layer.width)]
        let weightDims = [Int64(layer.outChannels), Int64(layer.inChannels), k, k]
        let strides: [Int64] = [1, 1], padding: [Int64] = [pad, pad]

        func descriptor(_ dims: [Int64], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            check(dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), dims, type, tag), "memory descriptor")
            return md
        }
        let plainSource = descriptor(sourceDims, dnnl_nchw), plainDestination = descriptor(destinationDims, dnnl_nchw)
        let plainWeights = descriptor(weightDims, dnnl_oihw)
        // Inputs in the precision's type, outputs in Float32 (x and y are each an input of one
        // primitive and the output of another).
        let input = layer.precision == .bf16 ? dnnl_bf16 : dnnl_f32
        var anySource = descriptor(sourceDims, dnnl_format_tag_any, input)
        var anyDestination = descriptor(destinationDims, dnnl_format_tag_any)
        var anyWeights = descriptor(weightDims, dnnl_format_tag_any, input)
        var anySourceResult = descriptor(sourceDims, dnnl_format_tag_any)
        var anyDestinationInput = descriptor(destinationDims, dnnl_format_tag_any, input)
        var anyWeightsResult = descriptor(weightDims, dnnl_format_tag_any)
        var biasDescriptor = descriptor([Int64(layer.outChannels)], dnnl_x)

        func attributes(adding: Bool) -> dnnl_primitive_attr_t {
            var attr: dnnl_primitive_attr_t?
            check(dnnl_primitive_attr_create(&attr), "attribute")
            check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
            if adding {
                var ops: dnnl_post_ops_t?
                check(dnnl_post_ops_create(&ops), "post-ops")
                check(dnnl_post_ops_append_sum(ops, 1), "sum post-op")
                check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops")
                dnnl_post_ops_destroy(ops)
            }
            return attr!
        }
        /// The primitive descriptor, or nil when oneDNN has no kernel for it (only when
        /// `optional`; otherwise that is a failure).
        func create(_ desc: UnsafeRawPointer, adding: Bool = false, hint: dnnl_primitive_desc_t? = nil,
                    optional: Bool = false) -> dnnl_primitive_desc_t? {
            let attr = attributes(adding: adding)
            defer { dnnl_primitive_attr_destroy(attr) }
            var pd: dnnl_primitive_desc_t?
            let status = dnnl_primitive_desc_create(&pd, desc, attr, cpuEngine, hint)
            if optional && status == dnnl_unimplemented { return nil }
            check(status, "convolution descriptor")
            return pd!
        }
        /// The first of Winograd (when asked for) and direct that oneDNN has a kernel for:
        /// `make` initialises the descriptor for an algorithm and creates it (nil: no kernel).
        func firstAvailable(_ make: (dnnl_alg_kind_t, Bool) -> dnnl_primitive_desc_t?) -> (dnnl_primitive_desc_t, dnnl_alg_kind_t) {
            if layer.winograd, let pd = make(dnnl_convolution_winograd, true) { return (pd, dnnl_convolution_winograd) }
            return (make(dnnl_convolution_direct, false)!, dnnl_convolution_direct)
        }
        func chosen(_ pd: dnnl_primitive_desc_t, _ argument: Int32) -> dnnl_memory_desc_t {
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, argument)!.pointee
        }

        // Forward: the layouts are the primitive's choice; the hinted backward primitives
        // then pick theirs to match where they can.
        let (forwardPD, forwardAlgorithm) = firstAvailable { algorithm, optional in
            var forwardDescriptor = dnnl_convolution_desc_t()
            withUnsafePointer(to: &biasDescriptor) { bias in
                check(dnnl_convolution_forward_desc_init(
                    &forwardDescriptor, dnnl_forward_training, algorithm, &anySource, &anyWeights,
                    layer.hasBias ? bias : nil, &anyDestination, strides, padding, padding), "forward descriptor")
            }
            return create(&forwardDescriptor, optional: optional)
        }
        var chosenSource = chosen(forwardPD, Argument.source)
        var chosenWeights = chosen(forwardPD, Argument.weights)
        var chosenDestination = chosen(forwardPD, Argument.destination)

        // The same convolution without bias, plain and with a sum post-op, on exactly the
        // layouts chosen above (a tangent adds conv(x, W-dot) onto conv(x-dot, W) + b-dot).
        // The forward's algorithm too, so that a tangent's two halves are computed alike.
        var plainDescriptor = dnnl_convolution_desc_t()
        check(dnnl_convolution_forward_desc_init(
            &plainDescriptor, dnnl_forward_training, forwardAlgorithm, &chosenSource, &chosenWeights,
            nil, &chosenDestination, strides, padding, padding), "forward descriptor")

        let (dataPD, _) = firstAvailable { algorithm, optional in
            var dataDescriptor = dnnl_convolution_desc_t()
            check(dnnl_convolution_backward_data_desc_init(
                &dataDescriptor, algorithm, &anySourceResult, &anyWeights, &anyDestinationInput,
                strides, padding, padding), "backward-data descriptor")
            return create(&dataDescriptor, hint: forwardPD, optional: optional)
        }
        let (weightsPD, _) = firstAvailable { algorithm, optional in
            var weightsDescriptor = dnnl_convolution_desc_t()
            check(dnnl_convolution_backward_weights_desc_init(
                &weightsDescriptor, algorithm, &anySource, &anyWeightsResult, nil, &anyDestinationInput,
                strides, padding, padding), "backward-weights descriptor")
            return create(&weightsDescriptor, hint: forwardPD, optional: optional)
        }

        // Layout classes: equal inner layouts get the same number.
        var classes: [dnnl_memory_desc_t] = []
        func operand(_ plain: dnnl_memory_desc_t, _ inner: dnnl_memory_desc_t) -> Operand {
            var inner = inner
            let index = classes.firstIndex { var c = $0; return dnnl_memory_desc_equal(&c, &inner) != 0 }
            if index == nil { classes.append(inner) }
            return Operand(plain: plain, inner: inner, layoutClass: index ?? classes.count - 1)
        }
        forwardSource = operand(plainSource, chosenSource)
        forwardWeights = operand(plainWeights, chosenWeights)
        forwardDestination = operand(plainDestination, chosenDestination)
        dataDiffDestination = operand(plainDestination, chosen(dataPD, Argument.diffDestination))
        dataWeights = operand(plainWeights, chosen(dataPD, Argument.weights))
        dataDiffSource = operand(plainSource, chosen(dataPD, Argument.diffSource))
        weightsSource = operand(plainSource, chosen(weightsPD, Argument.source))
        weightsDiffDestination = operand(plainDestination, chosen(weightsPD, Argument.diffDestination))
        weightsDiffWeights = operand(plainWeights, chosen(weightsPD, Argument.diffWeights))

        forwardPlain = Primitive(create(&plainDescriptor)!)
        forwardAdding = Primitive(create(&plainDescriptor, adding: true)!)
        forwardBiased = layer.hasBias ? Primitive(forwardPD) : nil
        if !layer.hasBias { dnnl_primitive_desc_destroy(forwardPD) }
        backwardData = Primitive(dataPD)
        backwardWeights = Primitive(weightsPD)
        self.biasDescriptor = biasDescriptor
    }

    /// dst (+)= conv(src, W) (+ b): with `bias` nil the unbiased primitive runs.
    func runForward(_ source: UnsafeRawPointer, _ weights: UnsafeRawPointer, _ bias: UnsafeRawPointer?,
                    _ destination: UnsafeMutableRawPointer, accumulate: Bool, _ scratch: PrimitiveScratch) {
        var arguments: [(Int32, UnsafeRawPointer, dnnl_memory_desc_t)] = [
            (Argument.source, source, forwardSource.inner), (Argument.weights, weights, forwardWeights.inner),
            (Argument.destination, UnsafeRawPointer(destination), forwardDestination.inner),
        ]
        if accumulate {
            precondition(bias == nil, "the accumulating convolution has no bias")
            forwardAdding.run(arguments, scratch)
        } else if let bias, let forwardBiased {
            arguments.append((Argument.bias, bias, biasDescriptor))
            forwardBiased.run(arguments, scratch)
        } else {
            forwardPlain.run(arguments, scratch)
        }
    }

    func runBackwardData(_ diffDestination: UnsafeRawPointer, _ weights: UnsafeRawPointer,
                         _ diffSource: UnsafeMutableRawPointer, _ scratch: PrimitiveScratch) {
        backwardData.run([(Argument.diffDestination, diffDestination, dataDiffDestination.inner),
                          (Argument.weights, weights, dataWeights.inner),
                          (Argument.diffSource, UnsafeRawPointer(diffSource), dataDiffSource.inner)], scratch)
    }

    func runBackwardWeights(_ source: UnsafeRawPointer, _ diffDestination: UnsafeRawPointer,
                            _ diffWeights: UnsafeMutableRawPointer, _ scratch: PrimitiveScratch) {
        backwardWeights.run([(Argument.source, source, weightsSource.inner),
                             (Argument.diffDestination, diffDestination, weightsDiffDestination.inner),
                             (Argument.diffWeights, UnsafeRawPointer(diffWeights), weightsDiffWeights.inner)], scratch)
    }
}
