import AmbitModel
import AmbitPolicy
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1

extension HTTPProxyHandler {
    /// Asks the external authorizers of the CUSTOM policies that select the request, in turn; the first
    /// denial answers the client (the authorizer's status, headers and body; `UAEX`), and when all allow,
    /// their header changes apply and ``decide(_:head:body:trailers:keepAlive:state:)`` goes on. The
    /// connection reads nothing more meanwhile.
    func checkExternally(
        _ providers: [String],
        request: AuthorizationRequest,
        head: HTTPRequestHead,
        body: ByteBuffer,
        trailers: HTTPHeaders?,
        keepAlive: Bool
    ) {
        guard let context else { return }
        let waypoint = tunnel.waypoint
        let state = waypoint.state
        let input = ExtAuthzInput(
            method: head.method.rawValue,
            target: head.uri,
            host: head.headers.first(name: "host") ?? tunnel.authority.description,
            headers: head.headers.map { ($0.name, $0.value) },
            protocolName: downstreamProtocol == .http2 ? "HTTP/2" : "HTTP/1.1",
            bodySize: body.readableBytes,
            requestID: head.headers.first(name: "x-request-id") ?? UUID().uuidString.lowercased(),
            source: IPEndpoint(tunnel.peerAddress, 0),
            sourcePrincipal: tunnel.peerIdentity,
            destination: tunnel.authority,
            destinationPrincipal: waypoint.options.identity
        )
        let channel = context.channel
        channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        let snapshot = state.snapshot
        let verdict = context.eventLoop.makePromise(of: ExtAuthzVerdict.self)
        verdict.completeWithTask {
            var changes = ExtAuthzHeaderChanges()
            for provider in providers {
                let verdict = await waypoint.authorizers.check(input, provider: provider, snapshot: snapshot)
                guard case .allow(let more) = verdict else { return verdict }
                changes.setting += more.setting
                changes.remove += more.remove
            }
            return .allow(changes)
        }
        verdict.futureResult.assumeIsolated().whenSuccess { [self] verdict in
            guard self.context != nil else { return }  // the client went away meanwhile
            channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            switch verdict {
            case .deny(let status, let headers, let text, let reason):
                waypoint.count { $0.deniedRequests += 1 }
                waypoint.logger.info(
                    "request denied",
                    metadata: [
                        "method": "\(head.method.rawValue)", "path": "\(head.uri)", "authority": "\(tunnel.authority)",
                        "src.identity": "\(tunnel.peerIdentity)", "reason": "\(reason)",
                    ]
                )
                respondLocally(
                    LocalResponse(
                        status: HTTPResponseStatus(statusCode: status),
                        headers: headers,
                        body: text,
                        flag: .unauthorizedExternalService
                    ),
                    head: head,
                    body: body,
                    keepAlive: keepAlive
                )
            case .allow(let changes):
                var head = head
                for name in changes.remove { head.headers.remove(name: name) }
                for change in changes.setting {
                    if change.append {
                        head.headers.add(name: change.name, value: change.value)
                    } else {
                        head.headers.replaceOrAdd(name: change.name, value: change.value)
                    }
                }
                // The policies after CUSTOM see the request as the authorizer left it (Envoy's filter order).
                var request = request
                if !changes.isEmpty {
                    var headers: [String: [String]] = [:]
                    for header in head.headers { headers[header.name.lowercased(), default: []].append(header.value) }
                    request.http?.headers = headers
                }
                decide(request, head: head, body: body, trailers: trailers, keepAlive: keepAlive, state: state)
            }
        }
    }
}
