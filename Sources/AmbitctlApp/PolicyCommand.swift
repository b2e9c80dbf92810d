import AmbitConfig
import AmbitModel
import AmbitPolicy
public import ArgumentParser
import Logging

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Evaluate authorization policies.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide whether a connection would be allowed at L4, and by which policy.",
            discussion: """
                --from is a pod (namespace/name), a SPIFFE ID, or "plaintext". --to is the address the
                client dials: a pod IP:port, or a service VIP:port (then every endpoint is checked at its
                target port, as the destination's node agent would).
                """
        )

        @Option(help: "Directory of manifests (pods, services, policies).")
        var manifests: String

        @Option(help: "Source: namespace/pod, spiffe://..., or plaintext.")
        var from: String

        @Option(help: "Source IP (defaults to the source pod's IP).")
        var sourceIP: String?

        @Option(help: "Destination IP:port (pod or service VIP).")
        var to: String

        @Option(help: "Exit with status 1 unless every decision is this one (allow or deny).")
        var expect: AuthorizationDecision.Outcome?

        @OptionGroup var mesh: MeshOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let logger = global.bootstrap()
            let (snapshot, _) = try loadManifests(manifests, options: mesh.configOptions, logger: logger)
            let (identity, defaultSource, sourceLabel) = try resolveSource(in: snapshot)
            let sourceAddress: IPAddress
            if let sourceIP {
                guard let address = IPAddress(sourceIP) else {
                    throw CLIError("--source-ip: \"\(sourceIP)\" is not an IP address")
                }
                sourceAddress = address
            } else if let defaultSource {
                sourceAddress = defaultSource
            } else {
                throw CLIError("--source-ip is required when --from is not a pod")
            }
            let destination: IPEndpoint
            do {
                destination = try IPEndpoint(parsing: to)
            } catch {
                throw CLIError("--to: \(error)")
            }

            var targets: [(Workload, UInt16)] = []
            if let binding = snapshot.service(at: destination) {
                let service = binding.service.namespacedName
                print(
                    "\(destination) is service \(service) port \(binding.port.port) → target port \(binding.port.targetPort)"
                )
                guard !binding.endpoints.isEmpty else {
                    throw CLIError("service \(service) has no endpoints for port \(binding.port.port)")
                }
                for endpoint in binding.endpoints {
                    if let workload = endpoint.pod.flatMap({ snapshot.workload(for: $0) }) {
                        targets.append((workload, endpoint.address.port))
                    } else {
                        print("endpoint \(endpoint.address) is outside the mesh: plain TCP, no policy applies")
                    }
                }
            } else if let workload = snapshot.workload(at: destination.address) {
                targets.append((workload, destination.port))
            } else {
                throw CLIError("\(destination.address) is neither a pod IP nor a service VIP in \(manifests)")
            }

            var outcomes: [AuthorizationDecision.Outcome] = []
            for (workload, port) in targets {
                var request = AuthorizationRequest(
                    to: workload,
                    port: port,
                    from: identity,
                    sourceAddress: sourceAddress
                )
                if let address = workload.pod.podIPs.first { request.destinationAddress = address }
                let decision = snapshot.authorization.evaluate(request)
                outcomes.append(decision.outcome)
                let target = "\(workload.key.namespacedName) \(IPEndpoint(request.destinationAddress, port))"
                print("\(decision.outcome.rawValue.uppercased())  \(sourceLabel) → \(target)")
                print(
                    "  policy: \(decision.policy.map { "\($0.namespacedName)" + (decision.rule.map { " rule \($0)" } ?? "") } ?? "none")"
                )
                print("  reason: \(decision.reason)")
                for match in decision.dryRunMatches {
                    print(
                        "  dry-run: \(match.policy.namespacedName) (\(match.action.rawValue)) would match rule \(match.rule)"
                    )
                }
                for audit in decision.auditMatches {
                    print("  audit: \(audit.namespacedName) matched")
                }
            }
            if let expect, outcomes.contains(where: { $0 != expect }) {
                throw ExitCode(1)
            }
        }

        private func resolveSource(in snapshot: ConfigSnapshot) throws -> (SpiffeID?, IPAddress?, String) {
            if from == "plaintext" {
                return (nil, nil, "plaintext \(sourceIP ?? "")")
            }
            if from.hasPrefix("spiffe://") {
                do {
                    let identity = try SpiffeID(parsing: from)
                    return (identity, nil, identity.uri)
                } catch {
                    throw CLIError("--from: \(error)")
                }
            }
            guard let key = ObjectKey(.pod, namespacedName: from) else {
                throw CLIError("--from must be namespace/pod, a spiffe:// ID or plaintext; got \"\(from)\"")
            }
            guard let workload = snapshot.workload(for: key) else {
                throw CLIError("--from: no pod \(key.namespacedName) in \(manifests)")
            }
            return (workload.identity, workload.pod.podIPs.first, "\(key.namespacedName) (\(workload.identity))")
        }
    }
}

extension AuthorizationDecision.Outcome: ExpressibleByArgument {}
