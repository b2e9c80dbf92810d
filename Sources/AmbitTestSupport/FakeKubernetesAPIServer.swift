import Foundation
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small stand-in for the Kubernetes API server, for config-source tests: HTTPS, bearer-token
/// or client-certificate authentication, paginated lists and chunked watches with the JSON
/// shapes the real server sends (`PodList` with `metadata.resourceVersion` and `continue`, watch
/// events `{"type":"ADDED","object":{...}}`, `BOOKMARK`s, `Status` objects with `410 Expired`).
/// Every write gets the next resourceVersion; history can be compacted so old versions expire.
public final class FakeKubernetesAPIServer: Sendable {
    public struct Request: Sendable, CustomStringConvertible {
        public let path: String
        public let query: [String: String]
        public let authorization: String?
        public var method = "GET"
        public var contentType: String? = nil
        public var body = ""
        public var isWatch: Bool { query["watch"] == "1" || query["watch"] == "true" }
        public var description: String {
            "\(path)?\(query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&"))"
        }
    }

    /// How a watch from an expired resourceVersion is refused.
    public enum Expiry: Sendable {
        /// `410 Gone` as the HTTP status (what the server does when the watch starts too old).
        case status
        /// `200` and then an `ERROR` event holding the 410 `Status` (what the watch cache does).
        case event
    }

    struct Event {
        let resourceVersion: Int
        let collection: String
        let line: String
    }

    struct Watcher {
        let channel: any Channel
        let collection: String
    }

    struct State {
        var resourceVersion = 1000
        /// Collection path → "namespace/name" → object JSON text (with its kind and apiVersion).
        var collections: [String: [String: String]] = [:]
        var notServed: Set<String> = []
        var history: [Event] = []
        var oldestResourceVersion = 1000
        var watchers: [ObjectIdentifier: Watcher] = [:]
        var requests: [Request] = []
        var failures: [String: [Int]] = [:]
        var acceptedTokens: Set<String> = []
        var expiry = Expiry.status
        var reviewableTokens: [String: ReviewedToken] = [:]
    }

    /// Who a token belongs to, as TokenReview answers for it.
    public struct ReviewedToken: Sendable {
        public var username: String
        public var audiences: [String]
        public var nodeName: String?
        public var podName: String?
        public var groups: [String]
        /// An authenticator that ignores audiences (some webhooks) answers without `status.audiences`.
        public var ignoresAudiences: Bool

        public init(
            username: String,
            audiences: [String],
            nodeName: String? = nil,
            podName: String? = nil,
            groups: [String] = ["system:serviceaccounts", "system:authenticated"],
            ignoresAudiences: Bool = false
        ) {
            self.username = username
            self.audiences = audiences
            self.nodeName = nodeName
            self.podName = podName
            self.groups = groups
            self.ignoresAudiences = ignoresAudiences
        }
    }

    let state = Mutex<State>(State())
    public let channel: any Channel
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// Starts on 127.0.0.1 with the server certificate; `clientRoots` makes client certificates required.
    public static func start(
        certificatePEM: String,
        privateKeyPEM: String,
        clientRootsPEM: String? = nil,
        group: any EventLoopGroup
    ) async throws -> FakeKubernetesAPIServer {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem))
        )
        if let clientRootsPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientRootsPEM.utf8)))
            tls.certificateVerification = .noHostnameVerification
        }
        let context = try NIOSSLContext(configuration: tls)
        let box = ServerBox()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = FakeKubernetesAPIServer(channel: channel)
        box.server.withLock { $0 = server }
        return server
    }

    private init(channel: any Channel) {
        self.channel = channel
    }

    public func close() async {
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.channel.close(promise: nil) }
        try? await channel.close()
    }

    // MARK: Changing the cluster

    /// Creates or replaces an object (JSON with `kind`, `apiVersion`, `metadata`) in `collection`
    /// (`/api/v1/pods`); watchers get `ADDED` or `MODIFIED`. Returns its new resourceVersion.
    @discardableResult
    public func put(_ collection: String, _ json: String) -> Int {
        state.withLock { state in
            guard var object = Self.object(json), var metadata = object["metadata"] as? [String: Any],
                let name = metadata["name"] as? String
            else { preconditionFailure("test object is not a Kubernetes object: \(json)") }
            let key = "\(metadata["namespace"] as? String ?? "")/\(name)"
            state.resourceVersion += 1
            let version = state.resourceVersion
            let existing = state.collections[collection]?[key].flatMap(Self.object)
            metadata["resourceVersion"] = String(version)
            if metadata["uid"] == nil {
                metadata["uid"] =
                    ((existing?["metadata"] as? [String: Any])?["uid"] as? String) ?? UUID().uuidString.lowercased()
            }
            if metadata["creationTimestamp"] == nil { metadata["creationTimestamp"] = "2026-11-30T09:00:00Z" }
            object["metadata"] = metadata
            let text = Self.json(object)
            state.collections[collection, default: [:]][key] = text
            Self.record(existing == nil ? "ADDED" : "MODIFIED", text, in: collection, version: version, &state)
            return version
        }
    }

    static func object(_ json: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
    }

    /// Deletes an object; watchers get `DELETED` with its last state.
    public func delete(_ collection: String, namespace: String = "", name: String) {
        state.withLock { state in
            guard let text = state.collections[collection]?.removeValue(forKey: "\(namespace)/\(name)"),
                var object = Self.object(text)
            else { return }
            state.resourceVersion += 1
            var metadata = object["metadata"] as? [String: Any] ?? [:]
            metadata["resourceVersion"] = String(state.resourceVersion)
            object["metadata"] = metadata
            Self.record("DELETED", Self.json(object), in: collection, version: state.resourceVersion, &state)
        }
    }

    /// Forgets the history: watches from any version before now get 410.
    public func compact() {
        state.withLock { state in
            state.history = []
            state.oldestResourceVersion = state.resourceVersion + 1
        }
    }

    /// Sends every open watch a `BOOKMARK` at the current resourceVersion; returns it.
    @discardableResult
    public func bookmark() -> Int {
        state.withLock { state in
            for watcher in state.watchers.values {
                let kind = Self.kindName(of: watcher.collection)
                let line = Self.eventLine(
                    "BOOKMARK",
                    [
                        "kind": kind, "apiVersion": Self.apiVersion(of: watcher.collection),
                        "metadata": [
                            "resourceVersion": String(state.resourceVersion), "creationTimestamp": NSNull(),
                            "annotations": ["k8s.io/initial-events-end": "true"],
                        ] as [String: Any],
                    ]
                )
                Self.send(line, to: watcher.channel)
            }
            return state.resourceVersion
        }
    }

    /// Ends every open watch with an `ERROR` event holding `410 Expired`, as the watch cache does.
    public func expireWatches() {
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            Self.send(
                Self.eventLine("ERROR", Self.status(410, "Expired", "too old resource version")),
                to: watcher.channel
            )
            watcher.channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                watcher.channel.close(promise: nil)
            }
        }
    }

    /// Breaks every open watch connection (as a load balancer or an API server restart would).
    public func dropWatches() {
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.channel.close(promise: nil) }
    }

    /// The next `count` requests (list or watch) to `collection` get `status`.
    public func fail(_ collection: String, status: Int, count: Int = 1) {
        state.withLock { $0.failures[collection, default: []] += Array(repeating: status, count: count) }
    }

    /// Forgets every failure still queued by ``fail(_:status:count:)``.
    public func clearFailures() {
        state.withLock { $0.failures = [:] }
    }

    /// A collection the cluster does not serve (its CRD is not installed): 404.
    public func setServed(_ collection: String, _ served: Bool) {
        state.withLock { state in
            if served { state.notServed.remove(collection) } else { state.notServed.insert(collection) }
        }
    }

    /// Tokens `POST /apis/authentication.k8s.io/v1/tokenreviews` authenticates (any other is refused).
    public func reviewTokens(_ tokens: [String: ReviewedToken]) {
        state.withLock { $0.reviewableTokens = tokens }
    }

    /// Bearer tokens accepted from now on (empty: no token needed).
    public func acceptTokens(_ tokens: Set<String>) {
        state.withLock { $0.acceptedTokens = tokens }
    }

    public func setExpiry(_ expiry: Expiry) {
        state.withLock { $0.expiry = expiry }
    }

    public var requests: [Request] { state.withLock { $0.requests } }
    public var openWatches: Int { state.withLock { $0.watchers.count } }
    public var resourceVersion: Int { state.withLock { $0.resourceVersion } }

    // MARK: Wire format

    static func record(
        _ type: String,
        _ objectJSON: String,
        in collection: String,
        version: Int,
        _ state: inout State
    ) {
        let line = "{\"object\":\(objectJSON),\"type\":\"\(type)\"}\n"
        state.history.append(Event(resourceVersion: version, collection: collection, line: line))
        for watcher in state.watchers.values where watcher.collection == collection {
            send(line, to: watcher.channel)
        }
    }

    static func eventLine(_ type: String, _ object: [String: Any]) -> String {
        json(["type": type, "object": object]) + "\n"
    }

    static func json(_ object: Any) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func send(_ line: String, to channel: any Channel) {
        var buffer = channel.allocator.buffer(capacity: line.utf8.count)
        buffer.writeString(line)
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
    }

    static func status(_ code: Int, _ reason: String, _ message: String) -> [String: Any] {
        [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure",
            "message": message, "reason": reason, "code": code,
        ]
    }

    /// `/api/v1/pods` → `Pod`; `/apis/security.istio.io/v1/authorizationpolicies` → `AuthorizationPolicy`.
    static func kindName(of collection: String) -> String {
        let plural = collection.split(separator: "/").last.map(String.init) ?? ""
        let kinds = [
            "namespaces": "Namespace", "pods": "Pod", "services": "Service", "serviceaccounts": "ServiceAccount",
            "authorizationpolicies": "AuthorizationPolicy", "peerauthentications": "PeerAuthentication",
            "gateways": "Gateway", "httproutes": "HTTPRoute", "virtualservices": "VirtualService",
            "endpointslices": "EndpointSlice", "gatewayclasses": "GatewayClass",
        ]
        return kinds[plural] ?? plural
    }

    static func apiVersion(of collection: String) -> String {
        let parts = collection.split(separator: "/").map(String.init)
        if parts.first == "api" { return parts[1] }
        return parts.count >= 3 ? "\(parts[1])/\(parts[2])" : ""
    }
}
