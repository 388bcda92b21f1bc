import CDNNL

/// One tensor as one primitive takes it: the engine's plain layout and the primitive's own,
/// with the reorders between them (nil when the layouts agree).
final class Operand {
    let plain: dnnl_memory_desc_t
    let inner: dnnl_memory_desc_t
    /// Bytes of the tensor in the primitive's layout (padded blocks included) and in plain layout.
    let bytes: Int, plainBytes: Int
    let same: Bool
    /// Equal inner layouts share a class, so a tensor staged for one primitive serves another.
    let layoutClass: Int
    private let plainMemory: dnnl_memory_t
    private let innerMemory: dnnl_memory_t
    private var toInner: dnnl_primitive_t?
    private var toPlain: dnnl_primitive_t?
    private var toPlainAdding: dnnl_primitive_t?

    init(plain: dnnl_memory_desc_t, inner: dnnl_memory_desc_t, layoutClass: Int) {
        self.plain = plain
        self.inner = inner
        self.layoutClass = layoutClass
        var p = plain, i = inner
        same = dnnl_memory_desc_equal(&p, &i) != 0
        bytes = dnnl_memory_desc_get_size(&i)
        plainBytes = dnnl_memory_desc_get_size(&p)
        var pm: dnnl_memory_t?, im: dnnl_memory_t?
        check(dnnl_memory_create(&pm, &p, cpuEngine, nil), "memory")
        check(dnnl_memory_create(&im, &i, cpuEngine, nil), "memory")
        plainMemory = pm!
        innerMemory = im!
    }

    deinit {
        for primitive in [toInner, toPlain, toPlainAdding] { if let primitive { dnnl_primitive_destroy(primitive) } }
        dnnl_memory_destroy(plainMemory)
        dnnl_memory_destroy(innerMemory)
    }

    private static func reorder(from: dnnl_memory_desc_t, to: dnnl_memory_desc_t, adding: Bool) -> dnnl_primitive_t {
        var from = from, to = to
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attribute")
        defer { dnnl_primitive_attr_destroy(attr) }
        if adding {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "post-ops")
            defer { dnnl_post_ops_destroy(ops) }
            check(dnnl_post_ops_append_sum(ops, 1), "sum post-op")
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops")
        }
        var descriptor: dnnl_primitive_desc_t?
        check(dnnl_reorder_primitive_desc_create(&descriptor, &from, cpuEngine, &to, cpuEngine, attr), "reorder")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        var primitive: dnnl_primitive_t?
        check(dnnl_primitive_create(&primitive, descriptor), "reorder primitive")
        return primitive!
    }

    private func run(_ primitive: dnnl_primitive_t, from: UnsafeRawPointer, to: UnsafeMutableRawPointer,
                     fromPlain: Bool, stream: dnnl_stream_t) {
        let source = fromPlain ? plainMemory : innerMemory
        let destination = fromPlain ? innerMemory : plainMemory
        check(dnnl_memory_set_data_handle(source, UnsafeMutableRawPointer(mutating: from)), "handle")
        check(dnnl_memory_set_data_handle(destination, to), "handle")
        let arguments = [dnnl_exec_arg_t(arg: Argument.source, memory: source),
                         dnnl_exec_arg_t(arg: Argument.destination, memory: destination)]
        check(dnnl_primitive_execute(primitive, stream, 2, arguments), "reorder")
    }

    /// Copies a plain tensor into `inner` in the primitive's layout.
    func importPlain(_ plain: UnsafeRawPointer, into inner: UnsafeMutableRawPointer, stream: dnnl_stream_t) {
        if toInner == nil { toInner = Operand.reorder(from: self.plain, to: self.inner, adding: false) }
        run(toInner!, from: plain, to: inner, fromPlain: true, stream: stream)
    }

    /// Writes (or adds) an inner-layout tensor into the plain one.
    func exportPlain(_ inner: UnsafeRawPointer, into plain: UnsafeMutableRawPointer, adding: Bool, stream: dnnl_stream_t) {
        if adding {
            if toPlainAdding == nil { toPlainAdding = Operand.reorder(from: self.inner, to: self.plain, adding: true) }
            run(toPlainAdding!, from: inner, to: plain, fromPlain: false, stream: stream)
        } else {
            if toPlain == nil { toPlain = Operand.reorder(from: self.inner, to: self.plain, adding: false) }
            run(toPlain!, from: inner, to: plain, fromPlain: false, stream: stream)
        }
    }
}
