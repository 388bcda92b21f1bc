import Foundation

nonisolated(unsafe) private var stopSignal: Int32 = 0

/// SIGINT and SIGTERM set a flag that long-running loops check between steps (and that
/// interrupts a blocking poll), so a run can checkpoint and exit cleanly.
public enum StopSignal {
    public static func install() {
        signal(SIGINT) { sig in stopSignal = sig }
        signal(SIGTERM) { sig in stopSignal = sig }
        // A launcher may hand us a blocked mask (a process spawned from a libdispatch thread
        // inherits that thread's mask, which blocks them): unblock, or the flag is never set.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The signal received, or nil.
    public static var received: Int32? { stopSignal == 0 ? nil : stopSignal }

    public static func reset() { stopSignal = 0 }
}
