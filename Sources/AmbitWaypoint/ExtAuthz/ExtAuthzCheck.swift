import AmbitModel
import AmbitProto
import FoundationEssentials
import SwiftProtobuf

/// What the external authorizer decided about one request.
enum ExtAuthzVerdict: Equatable, Sendable {
    /// Forward the request, with these changes to its headers.
    case allow(ExtAuthzHeaderChanges)
    /// Answer the client here.
    case deny(status: Int, headers: [(String, String)], body: String, reason: String)

    static func == (lhs: ExtAuthzVerdict, rhs: ExtAuthzVerdict) -> Bool {
        switch (lhs, rhs) {
        case (.allow(let a), .allow(let b)): return a == b
        case (.deny(let s1, let h1, let b1, let r1), .deny(let s2, let h2, let b2, let r2)):
            return s1 == s2 && h1.elementsEqual(h2, by: { $0 == $1 }) && b1 == b2 && r1 == r2
        default: return false
        }
    }
}

/// Header changes an authorizer asks for on an allowed request (`OkHttpResponse`).
struct ExtAuthzHeaderChanges: Equatable, Sendable {
    /// Set (replacing any value), or added when `append` is true.
    var setting: [(name: String, value: String, append: Bool)] = []
    var remove: [String] = []

    static func == (lhs: ExtAuthzHeaderChanges, rhs: ExtAuthzHeaderChanges) -> Bool {
        lhs.remove == rhs.remove
            && lhs.setting.elementsEqual(
                rhs.setting,
                by: { $0.name == $1.name && $0.value == $1.value && $0.append == $1.append }
            )
    }

    var isEmpty: Bool { setting.isEmpty && remove.isEmpty }
}

/// The request attributes sent to an authorizer, gathered by the waypoint.
struct ExtAuthzInput: Sendable {
    var method: String
    /// The request target as received (`/path?query`).
    var target: String
    var host: String
    /// Header names lower-cased; repeated headers joined with `,` as Envoy does.
    var headers: [(String, String)]
    var protocolName: String
    var bodySize: Int
    var requestID: String
    var source: IPEndpoint
    var sourcePrincipal: SpiffeID?
    var destination: IPEndpoint
    var destinationPrincipal: SpiffeID
}

/// Envoy's `envoy.service.auth.v3` messages, built and read without I/O (tested on their own).
enum ExtAuthzCheck {
    /// The `CheckRequest` Envoy's ext_authz filter would send for this request.
    static func request(_ input: ExtAuthzInput, now: Date = Date()) -> Envoy_Service_Auth_V3_CheckRequest {
        var http = Envoy_Service_Auth_V3_AttributeContext.HttpRequest()
        http.id = input.requestID
        http.method = input.method
        var headers: [String: String] = [":authority": input.host, ":method": input.method, ":path": input.target]
        for (name, value) in input.headers {
            let key = name.lowercased()
            if let existing = headers[key], !key.hasPrefix(":") {
                headers[key] = existing + "," + value
            } else {
                headers[key] = value
            }
        }
        http.headers = headers
        http.path = input.target
        http.host = input.host
        http.scheme = "http"
        http.protocol = input.protocolName
        http.size = Int64(input.bodySize)

        var request = Envoy_Service_Auth_V3_AttributeContext.Request()
        request.time = Google_Protobuf_Timestamp(date: now)
        request.http = http

        var attributes = Envoy_Service_Auth_V3_AttributeContext()
        attributes.source = peer(input.source, principal: input.sourcePrincipal)
        attributes.destination = peer(input.destination, principal: input.destinationPrincipal)
        attributes.request = request

        var check = Envoy_Service_Auth_V3_CheckRequest()
        check.attributes = attributes
        return check
    }

    private static func peer(_ endpoint: IPEndpoint, principal: SpiffeID?)
        -> Envoy_Service_Auth_V3_AttributeContext.Peer
    {
        var socket = Envoy_Config_Core_V3_SocketAddress()
        socket.address = endpoint.address.description
        socket.portValue = UInt32(endpoint.port)
        var address = Envoy_Config_Core_V3_Address()
        address.socketAddress = socket
        var peer = Envoy_Service_Auth_V3_AttributeContext.Peer()
        peer.address = address
        if let principal { peer.principal = principal.uri }
        return peer
    }

    /// Reads the authorizer's answer as Envoy does: gRPC status OK allows (with the `ok_response`'s
    /// header changes); any other code denies, with the `denied_response`'s status (403 when it gives
    /// none), headers and body.
    static func verdict(_ response: Envoy_Service_Auth_V3_CheckResponse, provider: String) -> ExtAuthzVerdict {
        let code = response.hasStatus ? response.status.code : 0
        if code == 0 {
            var changes = ExtAuthzHeaderChanges()
            if case .okResponse(let ok)? = response.httpResponse {
                for option in ok.headers where option.hasHeader {
                    let append = option.hasAppend ? option.append.value : false
                    changes.setting.append((option.header.key.lowercased(), headerValue(option.header), append))
                }
                changes.remove = ok.headersToRemove.map { $0.lowercased() }
            }
            return .allow(changes)
        }
        var status = 403
        var headers: [(String, String)] = []
        var body = ""
        if case .deniedResponse(let denied)? = response.httpResponse {
            if denied.hasStatus, denied.status.code.rawValue >= 200, denied.status.code.rawValue <= 599 {
                status = denied.status.code.rawValue
            }
            headers = denied.headers.filter(\.hasHeader).map { ($0.header.key.lowercased(), headerValue($0.header)) }
            body = denied.body
        }
        let message = response.status.message.isEmpty ? "" : ": \(response.status.message)"
        return .deny(
            status: status,
            headers: headers,
            body: body,
            reason: "denied by the external authorizer \"\(provider)\" (gRPC status \(code)\(message))"
        )
    }

    private static func headerValue(_ header: Envoy_Config_Core_V3_HeaderValue) -> String {
        header.value.isEmpty && !header.rawValue.isEmpty
            ? String(decoding: header.rawValue, as: UTF8.self) : header.value
    }
}
