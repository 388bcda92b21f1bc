import Foundation

/// A parser of Prometheus's text exposition format (version 0.0.4), strict enough to fail on
/// anything a Prometheus server would reject: every sample line is `name{labels} value`,
/// every `# TYPE` names a known type before its samples, label values are quoted.
public struct Exposition {
    public struct Sample: Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public var samples: [Sample] = []
    public var types: [String: String] = [:]

    public struct Malformed: Error, CustomStringConvertible {
        public var line: Int
        public var text: String
        public var description: String { "line \(line): \(text)" }
    }

    public init(_ text: String) throws {
        let nameChars = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
                if parts.count >= 2 && parts[1] == "TYPE" {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                        throw Malformed(line: n + 1, text: line)
                    }
                    types[parts[2]] = parts[3]
                }
                continue
            }
            var rest = Substring(line)
            let name = String(rest.prefix { $0.unicodeScalars.allSatisfy(nameChars.contains) })
            guard !name.isEmpty, !(name.first!.isNumber) else { throw Malformed(line: n + 1, text: line) }
            rest = rest.dropFirst(name.count)
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    let key = String(rest.prefix { $0 != "=" })
                    rest = rest.dropFirst(key.count)
                    guard rest.hasPrefix("=\""), !key.isEmpty else { throw Malformed(line: n + 1, text: line) }
                    rest = rest.dropFirst(2)
                    var value = ""
                    while let c = rest.first, c != "\"" {
                        if c == "\\" { rest = rest.dropFirst() }
                        guard let d = rest.first else { throw Malformed(line: n + 1, text: line) }
                        value.append(d)
                        rest = rest.dropFirst()
                    }
                    guard rest.first == "\"" else { throw Malformed(line: n + 1, text: line) }
                    rest = rest.dropFirst()
                    labels[key.trimmingCharacters(in: .whitespaces)] = value
                    if rest.first == "," { rest = rest.dropFirst() }
                    guard !rest.isEmpty else { throw Malformed(line: n + 1, text: line) }
                }
                rest = rest.dropFirst()
            }
            let fields = rest.split(separator: " ")
            guard (1...2).contains(fields.count) else { throw Malformed(line: n + 1, text: line) }
            let v = String(fields[0])
            guard let value = Double(v) ?? ["+Inf": Double.infinity, "-Inf": -Double.infinity, "NaN": Double.nan][v] else {
                throw Malformed(line: n + 1, text: line)
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    /// The value of the first sample named `name` with these labels (a subset).
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { k, v in sample.labels[k] == v } }?.value
    }

    /// GET `http://IPv4:PORT/PATH` over a plain socket (a blocking helper for tests): the
    /// body when the status is 200.
    public static func fetch(_ url: String, timeout: Double = 5) -> String? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let hostPort = rest.prefix { $0 != "/" }
        let path = String(rest.dropFirst(hostPort.count))
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else { return nil }
        let host = String(hostPort[..<colon])
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path.isEmpty ? "/" : path) HTTP/1.1\r\nHost: \(hostPort)\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") || text.hasPrefix("HTTP/1.0 200"), let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }
}

