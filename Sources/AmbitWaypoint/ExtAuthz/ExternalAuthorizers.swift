import AmbitConfig
import AmbitModel
import AmbitProto
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import Synchronization

/// The waypoint's clients of the external authorizers named in the mesh configuration
/// (`extensionProviders`, Envoy's `envoy.service.auth.v3.Authorization/Check` over gRPC). One gRPC
/// client per authorizer endpoint, made on first use and kept. Every way a check can go wrong — no
/// such provider, one Ambit cannot call, no endpoint, a timeout, an error — denies the request
/// (`statusOnError`, 403 by default), unless the provider says `failOpen: true`.
final class ExternalAuthorizers: Sendable {
    private let providers: [String: ExtensionProvider]
    private let group: any EventLoopGroup
    private let logger: Logger
    private let clients = Mutex<[String: Connection]>([:])

    private final class Connection: Sendable {
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        let running: Task<Void, Never>

        init(client: GRPCClient<HTTP2ClientTransport.Posix>, running: Task<Void, Never>) {
            self.client = client
            self.running = running
        }
    }

    /// `group` must be a NIO `MultiThreadedEventLoopGroup` (gRPC's transport runs on it).
    init(meshConfig: MeshConfig, group: any EventLoopGroup, logger: Logger) {
        self.providers = meshConfig.extensionProviders
        self.group = group
        self.logger = logger
    }

    /// Why a provider named by a CUSTOM policy cannot be asked, or `nil` when it can.
    func problem(with name: String) -> String? {
        guard let provider = providers[name] else {
            return "the mesh configuration defines no extension provider \"\(name)\""
        }
        if case .unsupported(let why) = provider.kind { return "extension provider \"\(name)\": \(why)" }
        return nil
    }

    /// Asks provider `name` about one request.
    func check(_ input: ExtAuthzInput, provider name: String, snapshot: ConfigSnapshot) async -> ExtAuthzVerdict {
        if let problem = problem(with: name) {
            return .deny(status: 403, headers: [], body: "", reason: "\(problem); denied (fail closed)")
        }
        guard case .extAuthzGrpc(let config) = providers[name]!.kind else { preconditionFailure() }
        guard let target = Self.target(of: config, in: snapshot) else {
            return failed(name, config, "its service \(config.service) port \(config.port) has no ready endpoint")
        }
        do {
            let client = try connection(to: target)
            var options = CallOptions.defaults
            options.timeout = config.timeout
            let response = try await Envoy_Service_Auth_V3_Authorization.Client(wrapping: client.client)
                .check(ExtAuthzCheck.request(input), options: options)
            return ExtAuthzCheck.verdict(response, provider: name)
        } catch let error as RPCError {
            return failed(name, config, "\(error.code): \(error.message)")
        } catch {
            return failed(name, config, "\(error)")
        }
    }

    /// Ends every client (at shutdown).
    func shutdown() {
        for connection in clients.withLock({ Array($0.values) }) {
            connection.client.beginGracefulShutdown()
        }
    }

    private func failed(_ name: String, _ config: ExtensionProvider.ExtAuthzGrpc, _ why: String) -> ExtAuthzVerdict {
        logger.warning(
            "external authorizer failed",
            metadata: ["provider": "\(name)", "error": "\(why)", "fail_open": "\(config.failOpen)"]
        )
        if config.failOpen { return .allow(ExtAuthzHeaderChanges()) }
        return .deny(
            status: config.statusOnError,
            headers: [],
            body: "",
            reason: "the external authorizer \"\(name)\" failed (\(why)); denied (failOpen is false)"
        )
    }

    /// Where to reach a provider: `[<namespace>/]<hostname>` is a Service of the mesh (a ready endpoint
    /// of its port, dialled directly), else a host name or address.
    static func target(of config: ExtensionProvider.ExtAuthzGrpc, in snapshot: ConfigSnapshot) -> IPEndpointOrHost? {
        let host = config.service.split(separator: "/", maxSplits: 1).last.map(String.init) ?? config.service
        if let service = snapshot.service(hostname: host) {
            for address in service.clusterIPs {
                guard let binding = snapshot.service(at: IPEndpoint(address, config.port)) else { continue }
                let ready = binding.healthyEndpoints.map(\.address).sorted { $0.description < $1.description }
                if let endpoint = ready.first { return .endpoint(endpoint) }
            }
            return nil
        }
        if let address = IPAddress(host) { return .endpoint(IPEndpoint(address, config.port)) }
        return .host(host, config.port)
    }

    enum IPEndpointOrHost: Hashable, Sendable, CustomStringConvertible {
        case endpoint(IPEndpoint)
        case host(String, UInt16)

        var description: String {
            switch self {
            case .endpoint(let endpoint): return endpoint.description
            case .host(let host, let port): return "\(host):\(port)"
            }
        }
    }

    private func connection(to target: IPEndpointOrHost) throws -> Connection {
        let key = target.description
        if let existing = clients.withLock({ $0[key] }) { return existing }
        let resolvable: any ResolvableTarget
        switch target {
        case .endpoint(let endpoint):
            let host = endpoint.address.description
            resolvable =
                endpoint.address.isIPv4
                ? .ipv4(address: host, port: Int(endpoint.port)) : .ipv6(address: host, port: Int(endpoint.port))
        case .host(let host, let port):
            resolvable = .dns(host: host, port: Int(port))
        }
        let transport = try HTTP2ClientTransport.Posix(
            target: resolvable,
            transportSecurity: .plaintext,
            eventLoopGroup: group
        )
        let client = GRPCClient(transport: transport)
        let running = Task { _ = try? await client.runConnections() }
        let connection = Connection(client: client, running: running)
        let (kept, spare) = clients.withLock { clients -> (Connection, Connection?) in
            if let existing = clients[key] { return (existing, connection) }
            clients[key] = connection
            return (connection, nil)
        }
        spare?.client.beginGracefulShutdown()
        return kept
    }
}
