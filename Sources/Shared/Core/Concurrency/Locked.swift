import Foundation

/// A value shared between threads, every access under one lock.
public final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    public init(_ value: Value) { self.value = value }

    /// The current value (a copy).
    public func get() -> Value { lock.withLock { value } }

    public func set(_ newValue: Value) { lock.withLock { value = newValue } }

    /// Runs `body` on the value under the lock and returns its result (for read-modify-write).
    @discardableResult
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try lock.withLock { try body(&value) }
    }
}
