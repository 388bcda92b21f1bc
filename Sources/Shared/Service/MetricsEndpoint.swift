import FlyingFox
import Foundation
import Logging
import Metrics
import Prometheus

/// The Prometheus endpoint of a coordinator or worker (`--metrics-address HOST:PORT`):
/// bootstraps swift-metrics with the Prometheus backend, so every metric the library records
/// (`RunMetrics`, `CoordinatorMetrics`, `WorkerMetrics`) appears at `GET /metrics` in the text
/// exposition format, served by FlyingFox on its own task.
///
/// Metrics created before `start` record nowhere, so an executable starts the endpoint
/// before the run begins.
public final class MetricsEndpoint: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    /// The port actually bound (useful with port 0).
    public let port: UInt16
    public let host: String
    private let server: HTTPServer
    private let task: Task<Void, Never>
    private let scrapes = ScrapeLog()

    /// Parses `HOST:PORT` (`[::1]:9464`, `:9464` or `*:9464` for every interface, `localhost`).
    public static func parse(_ address: String) throws(MetricsAddressError) -> (host: String, port: UInt16) {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw MetricsAddressError(address: address, reason: "expected HOST:PORT, for example 0.0.0.0:9464")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        switch host {
        case "", "*": host = "0.0.0.0"
        case "localhost": host = "127.0.0.1"
        default: break
        }
        // FlyingFox binds numeric addresses only.
        var v4 = in_addr(), v6 = in6_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else {
            throw MetricsAddressError(address: address, reason: "the host must be a numeric IPv4 or IPv6 address (or localhost)")
        }
        return (host, port)
    }

    private static let bootstrapped = NSLock()
    nonisolated(unsafe) private static var registryOnce: PrometheusCollectorRegistry?

    /// The process-wide registry, bootstrapping swift-metrics on first use (once per process).
    public static func sharedRegistry() -> PrometheusCollectorRegistry {
        bootstrapped.withLock {
            if let r = registryOnce { return r }
            let r = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
            registryOnce = r
            return r
        }
    }

    /// Starts serving; returns once the socket listens, or throws (address in use, bad host).
    public init(address: String, logger: Logger) throws {
        let (host, requestedPort) = try Self.parse(address)
        let registry = Self.sharedRegistry()
        self.registry = registry
        self.host = host
        var routes = RoutedHTTPHandler()
        let scrapes = self.scrapes
        routes.appendRoute("GET /metrics") { _ in
            let serial = scrapes.begin()
            defer { scrapes.end(serial) }
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: Data(registry.emitToBuffer()))
        }
        routes.appendRoute("GET /healthz") { _ in HTTPResponse(statusCode: .ok, body: Data("ok\n".utf8)) }
        let server = host.contains(":")
            ? HTTPServer(address: try sockaddr_in6.inet6(ip6: host, port: requestedPort), logger: .disabled, handler: routes)
            : HTTPServer(address: try sockaddr_in.inet(ip4: host, port: requestedPort), logger: .disabled, handler: routes)
        let started = OneShot<Result<UInt16, Error>>()
        task = Task.detached {
            do { try await server.run() } catch { started.fulfil(.failure(error)) }
        }
        Task.detached {
            do {
                try await server.waitUntilListening(timeout: 10)
                switch await server.listeningAddress {
                case .ip4(_, let p)?, .ip6(_, let p)?: started.fulfil(.success(p))
                default: started.fulfil(.failure(MetricsAddressError(address: address, reason: "the server is not listening")))
                }
            } catch {
                started.fulfil(.failure(error))
            }
        }
        switch started.wait() {
        case .success(let p): self.port = p
        case .failure(let error):
            task.cancel()
            throw MetricsAddressError(address: address, reason: "cannot listen: \(error)")
        }
        self.server = server
        logger.notice("serving Prometheus metrics", metadata: ["url": "http://\(host.contains(":") ? "[\(host)]" : host):\(self.port)/metrics"])
    }

    /// Waits until a scrape that began after this call has read the metrics, then stops
    /// serving (which lets its response go out): how a process that is about to exit on a
    /// failure gets its last values (`medmaml_training_diverged 1`) to Prometheus, which
    /// would otherwise find the target gone and never see them. Returns at once when nothing
    /// has scraped this endpoint yet (nobody is watching); waits at most twice the interval
    /// between the last two scrapes, plus a second, and never more than `limit` seconds.
    /// Returns whether such a scrape came.
    /// Whether anything has scraped this endpoint yet.
    public var isWatched: Bool { scrapes.count > 0 }

    @discardableResult
    public func awaitNextScrape(limit: Double = 120) -> Bool {
        let scraped = scrapes.awaitNext(limit: limit)
        if scraped { stop() }
        return scraped
    }

    /// Stops serving (open scrapes get a second to finish).
    public func stop() {
        let done = OneShot<Void>()
        let server = self.server, task = self.task
        Task.detached {
            await server.stop(timeout: 1)
            await task.value
            done.fulfil(())
        }
        done.wait()
    }
}

public struct MetricsAddressError: Error, CustomStringConvertible {
    public var address: String
    public var reason: String
    public var description: String { "--metrics-address \(address): \(reason)" }
}

/// When the endpoint was scraped: scrapes are numbered as they begin, and a waiter can ask for
/// one that began after it started waiting.
final class ScrapeLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var begun = 0
    private var lastEnded = 0
    private var times: [Date] = []

    func begin() -> Int {
        condition.lock()
        defer { condition.unlock() }
        begun += 1
        times = Array((times + [Date()]).suffix(2))
        return begun
    }

    func end(_ serial: Int) {
        condition.lock()
        defer { condition.unlock() }
        lastEnded = max(lastEnded, serial)
        condition.broadcast()
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return begun
    }

    func awaitNext(limit: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !times.isEmpty else { return false }
        let interval = times.count == 2 ? times[1].timeIntervalSince(times[0]) : limit
        let deadline = Date().addingTimeInterval(min(limit, 2 * interval + 1))
        let wanted = begun + 1
        while lastEnded < wanted {
            if !condition.wait(until: deadline) { return lastEnded >= wanted }
        }
        return true
    }
}

/// A value set once, waited for from synchronous code (never from async code).
final class OneShot<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: T?

    func fulfil(_ v: T) {
        condition.lock()
        defer { condition.unlock() }
        if value == nil {
            value = v
            condition.broadcast()
        }
    }

    func wait() -> T {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
