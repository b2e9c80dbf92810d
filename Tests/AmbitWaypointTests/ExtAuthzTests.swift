import AmbitConfig
import AmbitModel
import AmbitProto
import AmbitTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Testing

@testable import AmbitWaypoint

#if canImport(Glibc)
    import Glibc
#endif

/// The waypoint's ext_authz client: Envoy's CheckRequest and CheckResponse read and written without
/// I/O, then real gRPC calls to an independent authorizer (`Tests/Interop/ext_authz_server.py`, Python
/// grpcio with code generated from the same protos).
@Suite(.serialized, .timeLimit(.minutes(2))) struct ExtAuthzTests {
    static let python = ProcessInfo.processInfo.environment["AMBIT_PYTHON"] ?? "/usr/bin/python3"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/ext_authz_server.py").path
    static let client = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/client")
    static let waypoint = try! SpiffeID(parsing: "spiffe://cluster.local/ns/demo/sa/waypoint")

    static func input(_ target: String, headers: [(String, String)] = []) -> ExtAuthzInput {
        ExtAuthzInput(
            method: "GET",
            target: target,
            host: "server.demo.svc.cluster.local",
            headers: [("host", "server.demo.svc.cluster.local"), ("user-agent", "curl/8")] + headers,
            protocolName: "HTTP/1.1",
            bodySize: 0,
            requestID: "req-1",
            source: IPEndpoint(IPAddress("10.244.1.2")!, 0),
            sourcePrincipal: client,
            destination: IPEndpoint(IPAddress("10.96.0.10")!, 80),
            destinationPrincipal: waypoint
        )
    }

    @Test func theCheckRequestCarriesEnvoysAttributes() {
        let request = ExtAuthzCheck.request(Self.input("/a?b=1", headers: [("X-Dup", "1"), ("x-dup", "2")]))
        let attributes = request.attributes
        #expect(attributes.source.principal == "spiffe://cluster.local/ns/demo/sa/client")
        #expect(attributes.source.address.socketAddress.address == "10.244.1.2")
        #expect(attributes.destination.principal == "spiffe://cluster.local/ns/demo/sa/waypoint")
        #expect(attributes.destination.address.socketAddress.portValue == 80)
        let http = attributes.request.http
        #expect(http.method == "GET" && http.path == "/a?b=1" && http.host == "server.demo.svc.cluster.local")
        #expect(http.protocol == "HTTP/1.1" && http.scheme == "http" && http.id == "req-1")
        #expect(http.headers["x-dup"] == "1,2", "repeated headers are joined, names lower-cased")
        #expect(http.headers[":path"] == "/a?b=1" && http.headers[":method"] == "GET")
        #expect(attributes.request.hasTime)
    }

    @Test func verdictsFollowEnvoy() {
        func header(_ key: String, _ value: String, append: Bool? = nil) -> Envoy_Config_Core_V3_HeaderValueOption {
            var option = Envoy_Config_Core_V3_HeaderValueOption()
            option.header.key = key
            option.header.value = value
            if let append { option.append = Google_Protobuf_BoolValue(append) }
            return option
        }
        var ok = Envoy_Service_Auth_V3_CheckResponse()
        ok.okResponse.headers = [header("X-User", "alice"), header("x-group", "a", append: true)]
        ok.okResponse.headersToRemove = ["Authorization"]
        #expect(
            ExtAuthzCheck.verdict(ok, provider: "p")
                == .allow(
                    ExtAuthzHeaderChanges(
                        setting: [("x-user", "alice", false), ("x-group", "a", true)],
                        remove: ["authorization"]
                    )
                )
        )
        var denied = Envoy_Service_Auth_V3_CheckResponse()
        denied.status.code = 7
        denied.deniedResponse.status.code = .unauthorized
        denied.deniedResponse.headers = [header("WWW-Authenticate", "Bearer")]
        denied.deniedResponse.body = "who are you?"
        guard case .deny(let status, let headers, let body, let reason) = ExtAuthzCheck.verdict(denied, provider: "p")
        else {
            Issue.record("expected a denial")
            return
        }
        #expect(
            status == 401 && body == "who are you?" && headers.map { "\($0.0)=\($0.1)" } == ["www-authenticate=Bearer"]
        )
        #expect(reason.contains("\"p\"") && reason.contains("gRPC status 7"))
        var bare = Envoy_Service_Auth_V3_CheckResponse()
        bare.status.code = 16
        guard case .deny(403, let none, "", _) = ExtAuthzCheck.verdict(bare, provider: "p"), none.isEmpty else {
            Issue.record("a denial without an HTTP response is a plain 403")
            return
        }
    }

    /// The Python authorizer on 127.0.0.1, logging every Check to `log`.
    final class Server {
        let process = Process()
        let port: Int
        let log: String

        init(log: String) throws {
            self.log = log
            process.executableURL = URL(fileURLWithPath: ExtAuthzTests.python)
            process.arguments = [ExtAuthzTests.script, "--log", log]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            guard let last = line.split(separator: " ").last,
                let port = Int(last.trimmingCharacters(in: .whitespacesAndNewlines))
            else { throw TestFailure("ext_authz_server.py did not start: \(line)") }
            self.port = port
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        deinit { stop() }

        var calls: [[String: Any]] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func authorizers(_ providers: [ExtensionProvider], group: any EventLoopGroup)
        -> ExternalAuthorizers
    {
        ExternalAuthorizers(
            meshConfig: MeshConfig(
                extensionProviders: Dictionary(uniqueKeysWithValues: providers.map { ($0.name, $0) })
            ),
            group: group,
            logger: Logger(label: "ext-authz-test") { _ in SwiftLogNoOpLogHandler() }
        )
    }

    static let empty = ConfigSnapshot(objects: [], options: ConfigOptions(), version: 1)

    @Test func anIndependentAuthorizerAllowsDeniesAndFailsClosed() async throws {
        let files = try TemporaryDirectory(prefix: "ambit-ext-authz")
        defer { files.remove() }
        let server = try Server(log: files.path + "/checks.jsonl")
        let group = MultiThreadedEventLoopGroup.singleton
        var slow = ExtensionProvider.ExtAuthzGrpc(service: "127.0.0.1", port: UInt16(server.port))
        slow.timeout = .milliseconds(300)
        slow.statusOnError = 503
        let authorizers = Self.authorizers(
            [
                ExtensionProvider(
                    name: "authz",
                    kind: .extAuthzGrpc(.init(service: "127.0.0.1", port: UInt16(server.port)))
                ),
                ExtensionProvider(name: "slow", kind: .extAuthzGrpc(slow)),
                ExtensionProvider(name: "http", kind: .unsupported("HTTP ext_authz providers are not implemented")),
            ],
            group: group
        )
        defer { authorizers.shutdown() }
        func check(_ target: String, _ provider: String = "authz", headers: [(String, String)] = []) async
            -> ExtAuthzVerdict
        {
            await authorizers.check(Self.input(target, headers: headers), provider: provider, snapshot: Self.empty)
        }

        #expect(
            await check("/allow/x") == .allow(ExtAuthzHeaderChanges(setting: [("x-ext-authz-check", "allowed", false)]))
        )
        #expect(
            await check("/x", headers: [("x-ext-authz", "allow")])
                == .allow(ExtAuthzHeaderChanges(setting: [("x-ext-authz-check", "allowed", false)]))
        )
        guard case .deny(403, let headers, "denied by ext_authz", _) = await check("/deny") else {
            Issue.record("expected the authorizer's denial")
            return
        }
        #expect(headers.map { "\($0.0)=\($0.1)" } == ["x-ext-authz=denied"])
        guard case .deny(418, _, _, _) = await check("/status/418") else {
            Issue.record("expected the authorizer's status")
            return
        }
        // What the authorizer saw is what Envoy sends.
        let seen = try #require(server.calls.first)
        #expect(seen["path"] as? String == "/allow/x" && seen["method"] as? String == "GET")
        #expect(seen["source_principal"] as? String == "spiffe://cluster.local/ns/demo/sa/client")
        #expect(seen["destination_principal"] as? String == "spiffe://cluster.local/ns/demo/sa/waypoint")
        #expect(seen["source_address"] as? String == "10.244.1.2")
        #expect((seen["headers"] as? [String: String])?["user-agent"] == "curl/8")

        // Too slow: statusOnError, not an allow.
        guard case .deny(503, _, _, let reason) = await check("/slow/allow", "slow") else {
            Issue.record("a timed-out check must deny with statusOnError")
            return
        }
        #expect(reason.contains("failed"), "\(reason)")
        // A provider Ambit cannot call, and one the mesh config does not define: denied.
        guard case .deny(403, _, _, let unsupported) = await check("/allow", "http"),
            case .deny(403, _, _, let missing) = await check("/allow", "nobody")
        else {
            Issue.record("unusable providers must deny")
            return
        }
        #expect(unsupported.contains("not implemented") && missing.contains("no extension provider \"nobody\""))

        // The authorizer is gone: denied (failOpen false), and allowed where failOpen says so.
        server.stop()
        guard case .deny(403, _, _, _) = await check("/allow") else {
            Issue.record("an unreachable authorizer must deny")
            return
        }
        var open = ExtensionProvider.ExtAuthzGrpc(service: "127.0.0.1", port: UInt16(server.port))
        open.failOpen = true
        let failOpen = Self.authorizers([ExtensionProvider(name: "open", kind: .extAuthzGrpc(open))], group: group)
        defer { failOpen.shutdown() }
        #expect(
            await failOpen.check(Self.input("/deny"), provider: "open", snapshot: Self.empty)
                == .allow(ExtAuthzHeaderChanges())
        )
    }
}
