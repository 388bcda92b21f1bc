/// Security settings of a coordinator or worker.
public struct SecurityConfig: Sendable {
    public let keys: CurveKeyPair
    /// Coordinator: the workers' public keys allowed in.
    public let authorizedKeys: Set<String>
    /// Worker: the coordinator's public key.
    public let serverKey: String?

    public init(keys: CurveKeyPair, authorizedKeys: Set<String> = [], serverKey: String? = nil) {
        self.keys = keys
        self.authorizedKeys = authorizedKeys
        self.serverKey = serverKey
    }

    /// Makes `socket` a CURVE server; ZAP (domain "medmaml") decides who may connect.
    public func configureServer(_ socket: ZMQSocket) throws(ZMQError) {
        try socket.set(.curveServer, Int32(1))
        try socket.set(.curveSecretKey, bytes: Array(keys.secretKey.utf8))
        try socket.set(.zapDomain, bytes: Array("medmaml".utf8))
    }

    /// Makes `socket` a CURVE client of the server with public key `serverKey`.
    public func configureClient(_ socket: ZMQSocket) throws(ZMQError) {
        try socket.set(.curveServerKey, bytes: Array((serverKey ?? "").utf8))
        try socket.set(.curvePublicKey, bytes: Array(keys.publicKey.utf8))
        try socket.set(.curveSecretKey, bytes: Array(keys.secretKey.utf8))
    }
}
