public import AmbitModel
import Synchronization

/// What changed between two snapshots.
public struct ConfigChange: Sendable {
    public let previous: ConfigSnapshot
    public let current: ConfigSnapshot
    public let added: [ObjectKey]
    public let updated: [ObjectKey]
    public let removed: [ObjectKey]

    /// Whether any object of `kind` was added, updated or removed.
    public func touches(_ kind: ResourceKind) -> Bool {
        (added + updated + removed).contains { $0.kind == kind }
    }

    public var changedKeys: [ObjectKey] { (added + updated + removed).sorted() }
}

/// Holds the current ``ConfigSnapshot`` and tells subscribers about every change.
///
/// Readers (the data path) take the current snapshot with one short lock and then work on an
/// immutable value. Writers (config sources) are serialised and build the next snapshot outside
/// that lock, so a large rebuild never stalls a lookup.
public final class ConfigStore: Sendable {
    public let options: ConfigOptions
    private let current: Mutex<ConfigSnapshot>
    /// The full object set the current snapshot was built from; also serialises writers.
    private let objects = Mutex<[ObjectKey: ManifestObject]>([:])
    private let subscribers = Mutex<Subscribers>(Subscribers())

    private struct Subscribers {
        var next: UInt64 = 0
        var continuations: [UInt64: AsyncStream<ConfigChange>.Continuation] = [:]
    }

    public init(options: ConfigOptions = ConfigOptions()) {
        self.options = options
        self.current = Mutex(ConfigSnapshot(options: options))
    }

    /// The snapshot in force now.
    public var snapshot: ConfigSnapshot {
        current.withLock { $0 }
    }

    /// Replaces the whole object set. Returns the change, or `nil` when nothing differs.
    @discardableResult
    public func replaceAll(with newObjects: [ObjectKey: ManifestObject]) -> ConfigChange? {
        let change: ConfigChange? = objects.withLock { stored in
            var added: [ObjectKey] = []
            var updated: [ObjectKey] = []
            var removed: [ObjectKey] = []
            for (key, object) in newObjects {
                if let old = stored[key] {
                    if old != object { updated.append(key) }
                } else {
                    added.append(key)
                }
            }
            for key in stored.keys where newObjects[key] == nil {
                removed.append(key)
            }
            guard !(added.isEmpty && updated.isEmpty && removed.isEmpty) else { return nil }
            let previous = current.withLock { $0 }
            let next = ConfigSnapshot(objects: newObjects.values, options: options, version: previous.version + 1)
            stored = newObjects
            current.withLock { $0 = next }
            return ConfigChange(
                previous: previous,
                current: next,
                added: added.sorted(),
                updated: updated.sorted(),
                removed: removed.sorted()
            )
        }
        if let change {
            let continuations = subscribers.withLock { Array($0.continuations.values) }
            for continuation in continuations { continuation.yield(change) }
        }
        return change
    }

    /// A stream of every change from now on. The buffer is unbounded so that no change (and its
    /// list of removed objects) is ever dropped; subscribers are expected to keep up.
    public func changes() -> AsyncStream<ConfigChange> {
        let (stream, continuation) = AsyncStream<ConfigChange>.makeStream(bufferingPolicy: .unbounded)
        let id = subscribers.withLock { state in
            let id = state.next
            state.next += 1
            state.continuations[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.continuations.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every change stream (on shutdown).
    public func finish() {
        let continuations = subscribers.withLock { state in
            defer { state.continuations = [:] }
            return Array(state.continuations.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
