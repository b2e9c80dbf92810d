import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

// Serving: requests in, lists, watches and merge patches out.
extension FakeKubernetesAPIServer {
    enum Reply {
        case response(status: Int, body: String)
        case watch(backlog: [String], expiredEvent: String?, timeoutSeconds: Int?)
    }

    func handle(_ request: Request) -> Reply {
        state.withLock { state in
            state.requests.append(request)
            if !state.acceptedTokens.isEmpty {
                let token = request.authorization.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
                guard let token, state.acceptedTokens.contains(token) else {
                    return .response(status: 401, body: Self.json(Self.status(401, "Unauthorized", "Unauthorized")))
                }
            }
            if var queued = state.failures[request.path], !queued.isEmpty {
                let code = queued.removeFirst()
                state.failures[request.path] = queued
                return .response(status: code, body: Self.json(Self.status(code, "InternalError", "injected failure")))
            }
            if state.notServed.contains(request.path) {
                return .response(
                    status: 404,
                    body: Self.json(Self.status(404, "NotFound", "the server could not find the requested resource"))
                )
            }
            if request.method == "PATCH" { return patch(request, &state) }
            if request.method == "POST", request.path == "/apis/authentication.k8s.io/v1/tokenreviews" {
                return tokenReview(request, state)
            }
            if request.isWatch {
                let from = Int(request.query["resourceVersion"] ?? "") ?? state.resourceVersion
                if from + 1 < state.oldestResourceVersion {
                    let message = "too old resource version: \(from) (\(state.oldestResourceVersion - 1))"
                    switch state.expiry {
                    case .status:
                        return .response(status: 410, body: Self.json(Self.status(410, "Expired", message)))
                    case .event:
                        return .watch(
                            backlog: [],
                            expiredEvent: Self.eventLine("ERROR", Self.status(410, "Expired", message)),
                            timeoutSeconds: nil
                        )
                    }
                }
                let backlog = state.history.filter { $0.collection == request.path && $0.resourceVersion > from }
                return .watch(
                    backlog: backlog.map(\.line),
                    expiredEvent: nil,
                    timeoutSeconds: request.query["timeoutSeconds"].flatMap(Int.init)
                )
            }
            return list(request, &state)
        }
    }

    /// What the API server answers a TokenReview: `201 Created` with `status.authenticated`, the user and, for a
    /// pod-bound token, the pod's and node's names in `extra`; an unknown token or a foreign audience is
    /// `authenticated: false` with an `error`.
    func tokenReview(_ request: Request, _ state: State) -> Reply {
        guard let review = Self.object(request.body), let spec = review["spec"] as? [String: Any],
            let token = spec["token"] as? String
        else {
            return .response(status: 400, body: Self.json(Self.status(400, "BadRequest", "not a TokenReview")))
        }
        let audiences = spec["audiences"] as? [String] ?? []
        var status: [String: Any]
        if let known = state.reviewableTokens[token] {
            if !known.ignoresAudiences, !audiences.isEmpty, !known.audiences.contains(where: audiences.contains) {
                status = [
                    "authenticated": false,
                    "error":
                        "[invalid bearer token, token audiences \(known.audiences) is invalid for the target audiences \(audiences)]",
                ]
            } else {
                var extra: [String: [String]] = [:]
                if let node = known.nodeName { extra["authentication.kubernetes.io/node-name"] = [node] }
                if let pod = known.podName { extra["authentication.kubernetes.io/pod-name"] = [pod] }
                status = [
                    "authenticated": true,
                    "user": ["username": known.username, "groups": known.groups, "extra": extra],
                ]
                if !known.ignoresAudiences {
                    status["audiences"] =
                        audiences.isEmpty ? known.audiences : audiences.filter(known.audiences.contains)
                }
            }
        } else {
            status = [
                "authenticated": false,
                "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
            ]
        }
        let answer: [String: Any] = [
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": [:], "spec": spec,
            "status": status,
        ]
        return .response(status: 201, body: Self.json(answer))
    }

    func register(_ channel: any Channel, collection: String) {
        state.withLock { $0.watchers[ObjectIdentifier(channel)] = Watcher(channel: channel, collection: collection) }
    }

    func unregister(_ channel: any Channel) {
        _ = state.withLock { $0.watchers.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func list(_ request: Request, _ state: inout State) -> Reply {
        let all = (state.collections[request.path] ?? [:]).sorted { $0.key < $1.key }.compactMap {
            Self.object($0.value)
        }
        var offset = 0
        var listVersion = state.resourceVersion
        if let token = request.query["continue"] {
            let parts = token.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 2 else {
                return .response(status: 400, body: Self.json(Self.status(400, "BadRequest", "invalid continue token")))
            }
            (offset, listVersion) = (parts[0], parts[1])
            if listVersion < state.oldestResourceVersion - 1 {
                return .response(
                    status: 410,
                    body: Self.json(
                        Self.status(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result."
                        )
                    )
                )
            }
        }
        let limit = request.query["limit"].flatMap(Int.init) ?? all.count
        let page = Array(all.dropFirst(offset).prefix(max(limit, 1)))
        let core = request.path.hasPrefix("/api/")
        let items: [[String: Any]] = page.map { object in
            guard core else { return object }  // built-in kinds' list items carry no kind/apiVersion
            var item = object
            item.removeValue(forKey: "kind")
            item.removeValue(forKey: "apiVersion")
            return item
        }
        var metadata: [String: Any] = ["resourceVersion": String(listVersion)]
        let next = offset + page.count
        if next < all.count {
            metadata["continue"] = "\(next)-\(listVersion)"
            metadata["remainingItemCount"] = all.count - next
        }
        let body: [String: Any] = [
            "kind": "\(Self.kindName(of: request.path))List", "apiVersion": Self.apiVersion(of: request.path),
            "metadata": metadata, "items": items,
        ]
        return .response(status: 200, body: Self.json(body))
    }

    /// `PATCH /api/v1/namespaces/<ns>/<plural>/<name>[/status]` with a JSON merge patch (RFC 7386): the
    /// object changes as the real server changes it (the status subresource takes only `metadata` and
    /// `status`), gets the next resourceVersion, and watchers see `MODIFIED`.
    private func patch(_ request: Request, _ state: inout State) -> Reply {
        func failure(_ code: Int, _ reason: String, _ message: String) -> Reply {
            .response(status: code, body: Self.json(Self.status(code, reason, message)))
        }
        let parts = request.path.split(separator: "/").map(String.init)
        guard parts.count >= 6, parts[0] == "api", parts[2] == "namespaces", parts.count <= 7,
            parts.count == 6 || parts[6] == "status"
        else { return failure(405, "MethodNotAllowed", "PATCH is served for namespaced core objects only") }
        guard request.contentType == "application/merge-patch+json" else {
            return failure(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
        }
        guard let patch = Self.object(request.body) else {
            return failure(400, "BadRequest", "the patch is not a JSON object")
        }
        let collection = "/api/\(parts[1])/\(parts[4])"
        let key = "\(parts[3])/\(parts[5])"
        guard let text = state.collections[collection]?[key], let object = Self.object(text) else {
            return failure(404, "NotFound", "\(parts[4]) \"\(parts[5])\" not found")
        }
        let allowed = parts.count == 7 ? patch.filter { ["metadata", "status"].contains($0.key) } : patch
        guard var patched = Self.merge(object, allowed) as? [String: Any] else {
            return failure(422, "Invalid", "the patch does not leave an object")
        }
        state.resourceVersion += 1
        var metadata = patched["metadata"] as? [String: Any] ?? [:]
        metadata["resourceVersion"] = String(state.resourceVersion)
        patched["metadata"] = metadata
        let updated = Self.json(patched)
        state.collections[collection]?[key] = updated
        Self.record("MODIFIED", updated, in: collection, version: state.resourceVersion, &state)
        return .response(status: 200, body: updated)
    }

    /// RFC 7386: objects merge member by member, `null` removes a member, anything else replaces.
    static func merge(_ target: Any?, _ patch: Any) -> Any {
        guard let patch = patch as? [String: Any] else { return patch }
        var result = target as? [String: Any] ?? [:]
        for (key, value) in patch {
            if value is NSNull {
                result.removeValue(forKey: key)
            } else {
                result[key] = merge(result[key], value)
            }
        }
        return result
    }

    /// The object `collection` holds under `namespace/name`, as JSON.
    public func object(_ collection: String, namespace: String = "", name: String) -> [String: Any]? {
        state.withLock { $0.collections[collection]?["\(namespace)/\(name)"] }.flatMap(Self.object)
    }
}

/// Lets child channels reach the server object, which exists only once the listener is bound.
final class ServerBox: Sendable {
    let server = Mutex<FakeKubernetesAPIServer?>(nil)
}

final class RequestHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let box: ServerBox
    private let pending = Mutex<FakeKubernetesAPIServer.Request?>(nil)

    init(box: ServerBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let components = URLComponents(string: head.uri)
            var query: [String: String] = [:]
            for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            var request = FakeKubernetesAPIServer.Request(
                path: components?.path ?? head.uri,
                query: query,
                authorization: head.headers.first(name: "authorization")
            )
            request.method = head.method.rawValue
            request.contentType = head.headers.first(name: "content-type")
            pending.withLock { $0 = request }
        case .body(var buffer):
            let text = buffer.readString(length: buffer.readableBytes) ?? ""
            pending.withLock { $0?.body += text }
        case .end:
            guard let request = pending.withLock({ $0.take() }), let server = box.server.withLock({ $0 }) else {
                return
            }
            serve(request, server: server, context: context)
        }
    }

    private func serve(
        _ request: FakeKubernetesAPIServer.Request,
        server: FakeKubernetesAPIServer,
        context: ChannelHandlerContext
    ) {
        switch server.handle(request) {
        case .response(let status, let body):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: "\(body.utf8.count)")
            context.write(
                wrapOutboundOut(
                    .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))
                ),
                promise: nil
            )
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))),
                promise: nil
            )
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        case .watch(let backlog, let expired, let timeout):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "transfer-encoding", value: "chunked")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            for line in backlog {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: line)))),
                    promise: nil
                )
            }
            let channel = context.channel
            if let expired {
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: expired)))),
                    promise: nil
                )
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
                return
            }
            context.flush()
            server.register(channel, collection: request.path)
            channel.closeFuture.whenComplete { _ in server.unregister(channel) }
            if let timeout {
                channel.eventLoop.scheduleTask(in: .seconds(Int64(timeout))) {
                    server.unregister(channel)
                    channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                }
            }
        }
    }
}
