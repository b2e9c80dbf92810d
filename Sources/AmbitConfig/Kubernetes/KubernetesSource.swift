public import AmbitModel
import FoundationEssentials
public import Logging
public import NIOCore
import Synchronization

/// Feeds a ``ConfigStore`` from the Kubernetes API: a list and then a watch (with bookmarks) of
/// every collection Ambit reads, across all namespaces, re-listing on `410 Gone` and backing off
/// on errors. Objects go through the same ``ManifestDecoder`` as manifest files: an object that
/// does not decode is rejected with an error naming it and its field, and its last good version
/// stays in force. Nothing is published until every collection was listed once.
public final class KubernetesSource: ConfigSource {
    public struct Options: Sendable {
        /// Objects per list page (`limit`).
        public var pageSize = 500
        /// The server ends each watch after a random time between this and twice this, so that
        /// many agents do not reconnect together.
        public var watchTimeout: Duration = .seconds(300)
        /// Changes arriving within this window are applied together (one snapshot rebuild).
        public var publishDelay: Duration = .milliseconds(50)
        public var backoff = RetryBackoff(initial: .milliseconds(500), maximum: .seconds(30))
        /// How often to look again for a collection the cluster does not serve (CRDs not installed).
        public var absentRecheck: Duration = .seconds(60)
        public var maximumListBytes = 1 << 30
        public var maximumEventBytes = 32 << 20
        public var userAgent = "ambit"

        public init() {}
    }

    /// How one collection is doing.
    public struct CollectionStatus: Sendable {
        public var kind: ResourceKind
        /// The version being read (`security.istio.io/v1`), `nil` while unknown or when none is served.
        public var apiVersion: String?
        public var synced = false
        public var served = true
        public var resourceVersion: String?
        /// Objects in force, and objects whose latest version was rejected.
        public var objects = 0
        public var rejected = 0
        public var lastError: String?
        public var relists = 0
    }

    public let cluster: KubernetesClusterConfig
    let options: Options
    let store: ConfigStore
    let logger: Logger
    let client: KubernetesAPIClient
    let decoder = ManifestDecoder()
    let state: Mutex<State>
    /// Held across "read the merged set, replace the store" so that publishes never reorder.
    private let publishing = Mutex(())
    let dirty: AsyncStream<Void>.Continuation
    let dirtySignals: AsyncStream<Void>
    private let tasks = Mutex<[Task<Void, Never>]>([])

    struct Entry {
        /// The last version that decoded (stays in force while a newer one is rejected).
        var object: ManifestObject?
        var error: ManifestError?
    }

    struct State {
        var entries: [ResourceKind: [ObjectKey: Entry]] = [:]
        var collections: [ResourceKind: CollectionStatus] = [:]
        var allSynced: Bool { collections.values.allSatisfy(\.synced) }
    }

    public init(
        cluster: KubernetesClusterConfig,
        store: ConfigStore,
        group: any EventLoopGroup,
        options: Options = Options(),
        logger: Logger
    ) throws(KubernetesConfigError) {
        self.cluster = cluster
        self.options = options
        self.store = store
        self.logger = logger
        client = try KubernetesAPIClient(config: cluster, group: group, userAgent: options.userAgent)
        var initial = State()
        for versions in KubernetesResource.all {
            let kind = versions[0].kind
            initial.collections[kind] = CollectionStatus(kind: kind)
        }
        state = Mutex(initial)
        (dirtySignals, dirty) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: ConfigSource

    public func start() async throws {
        logger.info("reading configuration from the Kubernetes API", metadata: ["server": "\(cluster)"])
        let started = KubernetesResource.all.map { versions in
            Task { await self.reflect(versions) }
        }
        tasks.withLock { $0 += started }
        var waited: Duration = .zero
        while !state.withLock({ $0.allSynced }) {
            try await Task.sleep(for: .milliseconds(50))
            waited += .milliseconds(50)
            if waited.components.seconds > 0, waited.components.seconds % 10 == 0,
                waited.components.attoseconds == 0
            {
                let pending = state.withLock { state in
                    state.collections.values.filter { !$0.synced }.sorted { $0.kind < $1.kind }
                        .map { "\($0.kind.plural)" + ($0.lastError.map { " (\($0))" } ?? "") }
                }
                logger.warning(
                    "still waiting for the Kubernetes API",
                    metadata: ["pending": "\(pending.joined(separator: ", "))", "server": "\(cluster)"]
                )
            }
        }
        publish()
        let publisher = Task {
            for await _ in dirtySignals {
                try? await Task.sleep(for: options.publishDelay)
                if Task.isCancelled { return }
                publish()
            }
        }
        tasks.withLock { $0.append(publisher) }
        let count = state.withLock { $0.entries.values.reduce(0) { $0 + $1.count } }
        logger.info("Kubernetes configuration synced", metadata: ["objects": "\(count)"])
    }

    public func run() async throws {
        await withTaskCancellationHandler {
            let running = tasks.withLock { $0 }
            for task in running { await task.value }
        } onCancel: {
            self.stop()
        }
    }

    /// Ends every list, watch and the publisher.
    public func stop() {
        dirty.finish()
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }

    public func statusDump() -> [String: Any] {
        let collections: [[String: Any]] = status().map { status in
            var entry: [String: Any] = [
                "kind": status.kind.rawValue, "synced": status.synced, "served": status.served,
                "objects": status.objects, "rejected": status.rejected, "relists": status.relists,
            ]
            if let version = status.apiVersion { entry["apiVersion"] = version }
            if let version = status.resourceVersion { entry["resourceVersion"] = version }
            if let error = status.lastError { entry["lastError"] = error }
            return entry
        }
        return ["kind": "kubernetes", "server": "\(cluster)", "collections": collections, "rejectedObjects": problems]
    }

    /// The objects rejected now (their last good version stays in force), with why.
    public var problems: [String] {
        state.withLock { state in
            state.entries.values.flatMap { $0.values.compactMap(\.error) }.map(\.description).sorted()
        }
    }

    /// Waits up to two seconds for the watch to deliver `key` (a pod the CNI plugin announces is
    /// normally in the store already: the kubelet sets up its network after the scheduler bound it).
    public func catchUp(awaiting key: ObjectKey) async {
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            if store.snapshot.pods[key] != nil { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Every collection's status, in sync order.
    public func status() -> [CollectionStatus] {
        state.withLock { state in
            state.collections.values.sorted { $0.kind < $1.kind }.map { status in
                var status = status
                let entries = state.entries[status.kind] ?? [:]
                status.objects = entries.values.count { $0.object != nil }
                status.rejected = entries.values.count { $0.error != nil }
                return status
            }
        }
    }

    // MARK: Publishing

    private func publish() {
        publishing.withLock { _ in
            let objects = state.withLock { state in
                var merged: [ObjectKey: ManifestObject] = [:]
                merged.reserveCapacity(state.entries.values.reduce(0) { $0 + $1.count })
                for entries in state.entries.values {
                    for (key, entry) in entries {
                        if let object = entry.object { merged[key] = object }
                    }
                }
                return merged
            }
            if let change = store.replaceAll(with: objects) {
                logger.debug(
                    "config applied",
                    metadata: [
                        "version": "\(change.current.version)", "added": "\(change.added.count)",
                        "updated": "\(change.updated.count)", "removed": "\(change.removed.count)",
                    ]
                )
            }
        }
    }

    func changed() {
        if state.withLock({ $0.allSynced }) { dirty.yield() }
    }

    // MARK: One collection

    private enum WatchOutcome: Error {
        case expired
    }

    private struct NotServed: Error {}

    private func reflect(_ versions: [KubernetesResource]) async {
        let kind = versions[0].kind
        var machine = ReflectorStateMachine(backoff: options.backoff, absentRecheck: options.absentRecheck)
        var action = machine.first
        var served = versions[0]
        while !Task.isCancelled {
            switch action {
            case .wait(let delay, let step):
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return
                }
                action = .perform(step)

            case .perform(.list):
                do {
                    let (resource, items, resourceVersion) = try await list(versions)
                    served = resource
                    replace(kind, items: items, resource: resource, resourceVersion: resourceVersion)
                    action = machine.listed(resourceVersion: resourceVersion)
                } catch is NotServed {
                    let first = versions.map(\.apiVersion).joined(separator: ", ")
                    let wasServed = updateStatus(kind) { status in
                        defer {
                            status.served = false
                            status.apiVersion = nil
                        }
                        return status.served
                    }
                    if wasServed {
                        logger.warning(
                            "the cluster does not serve \(kind.plural) (\(first)); treating them as none",
                            metadata: ["hint": "install the CRDs (Istio / Gateway API) to use these objects"]
                        )
                    }
                    replace(kind, items: [], resource: nil, resourceVersion: nil)
                    action = machine.listNotServed()
                } catch {
                    if Task.isCancelled { return }
                    let message = describe(error, kind: kind, operation: "list")
                    updateStatus(kind) { $0.lastError = message }
                    action = machine.listFailed()
                    logger.warning(
                        "cannot list \(kind.plural); retrying",
                        metadata: ["error": "\(message)", "retry": "\(Self.delay(of: action))"]
                    )
                }

            case .perform(.watch(let resourceVersion)):
                do {
                    try await watch(served, from: resourceVersion, machine: &machine)
                    action = machine.watchEnded()
                } catch WatchOutcome.expired {
                    logger.info("\(kind.plural): watch expired (410 Gone); listing again")
                    updateStatus(kind) { $0.relists += 1 }
                    action = machine.watchExpired()
                } catch {
                    if Task.isCancelled { return }
                    let message = describe(error, kind: kind, operation: "watch")
                    updateStatus(kind) { $0.lastError = message }
                    action = machine.watchFailed()
                    logger.warning(
                        "watch of \(kind.plural) failed; retrying",
                        metadata: ["error": "\(message)", "retry": "\(Self.delay(of: action))"]
                    )
                }
            }
        }
    }

    private static func delay(of action: ReflectorStateMachine.Action) -> String {
        if case .wait(let delay, _) = action { return "\(delay)" }
        return "now"
    }

    /// Lists every page of the first version of the collection the cluster serves.
    private func list(_ versions: [KubernetesResource]) async throws -> (KubernetesResource, [JSONValue], String) {
        for resource in versions {
            var restarts = 0
            while true {
                do {
                    let (items, resourceVersion) = try await listPages(resource)
                    return (resource, items, resourceVersion)
                } catch KubernetesAPIError.status(let code, _, _) where code == 404 {
                    break  // this version is not served; try the next
                } catch KubernetesAPIError.status(let code, _, _) where code == 410 && restarts < 3 {
                    restarts += 1  // a continue token expired between pages: start over
                }
            }
        }
        throw NotServed()
    }

    private func listPages(_ resource: KubernetesResource) async throws -> ([JSONValue], String) {
        var items: [JSONValue] = []
        var token: String?
        var resourceVersion = ""
        repeat {
            var query = [("limit", "\(options.pageSize)")]
            if let token { query.append(("continue", token)) }
            let body = try await client.get(
                resource.path,
                query: query,
                limit: options.maximumListBytes,
                idleTimeout: .seconds(60)
            )
            let list: JSONValue
            do {
                list = try JSONValue.parse(body.readableBytesView)
            } catch {
                throw KubernetesAPIError.malformed("list of \(resource): \(error)")
            }
            guard let page = list["items"]?.arrayValue ?? (list["items"] == .null ? [] : nil) else {
                throw KubernetesAPIError.malformed("list of \(resource) has no items array")
            }
            guard let version = list["metadata"]?["resourceVersion"]?.stringValue, !version.isEmpty else {
                throw KubernetesAPIError.malformed("list of \(resource) has no metadata.resourceVersion")
            }
            items += page
            resourceVersion = version
            token = list["metadata"]?["continue"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        } while token != nil
        return (items, resourceVersion)
    }

    private func watch(
        _ resource: KubernetesResource,
        from resourceVersion: String,
        machine: inout ReflectorStateMachine
    ) async throws {
        let timeout = options.watchTimeout.components.seconds
        let seconds = Int.random(in: Int(timeout)...Int(timeout * 2))
        let query = [
            ("watch", "1"), ("allowWatchBookmarks", "true"), ("resourceVersion", resourceVersion),
            ("timeoutSeconds", "\(seconds)"),
        ]
        do {
            try await client.streamLines(
                resource.path,
                query: query,
                // A quiet collection may send nothing until the server's timeout.
                idleTimeout: .seconds(Int64(seconds) + 30),
                maximumLine: options.maximumEventBytes
            ) { line in
                try handleEvent(line, resource: resource, machine: &machine)
            }
        } catch KubernetesAPIError.status(let code, _, _) where code == 410 {
            throw WatchOutcome.expired
        }
    }

    private func handleEvent(_ line: ByteBuffer, resource: KubernetesResource, machine: inout ReflectorStateMachine)
        throws
    {
        let event: JSONValue
        do {
            event = try JSONValue.parse(line.readableBytesView)
        } catch {
            throw KubernetesAPIError.malformed("watch event of \(resource): \(error)")
        }
        guard let type = event["type"]?.stringValue, let object = event["object"] else {
            throw KubernetesAPIError.malformed("watch event of \(resource) without type or object")
        }
        let version = object["metadata"]?["resourceVersion"]?.stringValue
        switch type {
        case "ADDED", "MODIFIED":
            apply(resource, object: object)
        case "DELETED":
            if let key = Self.key(of: object, kind: resource.kind) { remove(key) }
        case "BOOKMARK":
            break
        case "ERROR":
            let status = KubernetesStatus(object)
            if status?.code == 410 { throw WatchOutcome.expired }
            throw KubernetesAPIError.status(
                code: status?.code ?? 500,
                reason: status?.reason ?? "Error",
                message: status?.message
            )
        default:
            throw KubernetesAPIError.malformed("watch event of \(resource) has unknown type \(type)")
        }
        if let version, !version.isEmpty {
            machine.observed(resourceVersion: version)
            updateStatus(resource.kind) { $0.resourceVersion = version }
        }
    }
}
