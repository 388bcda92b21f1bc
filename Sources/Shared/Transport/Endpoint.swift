/// What MedMAML needs to know about a ZeroMQ endpoint string.
public enum Endpoint {
    /// Whether traffic to or from `endpoint` stays on this machine: `ipc://`, `inproc://`, or
    /// `tcp://` on 127.0.0.0/8, `localhost` or `::1`. Plaintext anywhere else needs `--insecure`.
    public static func isLoopback(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let rest = endpoint.dropFirst(6)
        let host = rest.hasPrefix("[") ? String(rest.dropFirst().prefix { $0 != "]" }) : String(rest.prefix { $0 != ":" })
        return ["127.0.0.1", "localhost", "::1"].contains(host) || host.hasPrefix("127.")
    }
}
