import CDNNL

/// The process's oneDNN CPU engine (thread-safe: oneDNN engines may be shared by threads).
nonisolated(unsafe) let cpuEngine: dnnl_engine_t = {
    var engine: dnnl_engine_t?
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine")
    return engine!
}()

@inline(__always)
func check(_ status: dnnl_status_t, _ what: String) {
    // Shapes are validated before a network is built, and oneDNN has a reference kernel for
    // every convolution, so a failure here is a bug, never outside input.
    precondition(status == dnnl_success, "oneDNN \(what) failed with status \(status.rawValue)")
}

enum Argument {
    static let source: Int32 = 1, destination: Int32 = 17, weights: Int32 = 33, bias: Int32 = 41
    static let scratchpad: Int32 = 80
    static let diffSource: Int32 = 129, diffDestination: Int32 = 145, diffWeights: Int32 = 161
}
