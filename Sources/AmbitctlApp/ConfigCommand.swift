import AmbitModel
import ArgumentParser
import FoundationEssentials
import Logging

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check manifest directories.",
        subcommands: [Validate.self]
    )

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a manifest directory and show what the mesh makes of it.",
            discussion: "Exits non-zero if any file is rejected; every error names file, line, object and field."
        )

        @Argument(help: "Directory of Kubernetes-style YAML manifests.")
        var directory: String

        @OptionGroup var mesh: MeshOptions
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let logger = global.bootstrap()
            let (snapshot, report) = try loadManifests(directory, options: mesh.configOptions, logger: logger)
            print("\(report.objectCount) objects from \(report.fileCount) files in \(directory)")
            var counts: [ResourceKind: Int] = [:]
            counts[.namespace] = snapshot.namespaces.count
            counts[.serviceAccount] = snapshot.serviceAccounts.count
            counts[.pod] = snapshot.pods.count
            counts[.service] = snapshot.services.count
            counts[.authorizationPolicy] = snapshot.authorizationPolicies.count
            counts[.peerAuthentication] = snapshot.peerAuthentications.count
            counts[.gateway] = snapshot.gateways.count
            counts[.httpRoute] = snapshot.httpRoutes.count
            counts[.virtualService] = snapshot.virtualServices.count
            print(ResourceKind.allCases.map { "\($0): \(counts[$0] ?? 0)" }.joined(separator: ", "))

            print("\nWorkloads")
            var rows = [["POD", "IP", "NODE", "IDENTITY", "CAPTURE", "WAYPOINT"]]
            for key in snapshot.pods.keys.sorted() {
                guard let workload = snapshot.workload(for: key) else { continue }
                rows.append([
                    key.namespacedName,
                    workload.pod.podIPs.map(\.description).joined(separator: ","),
                    workload.pod.nodeName ?? "-",
                    workload.identity.uri,
                    workload.enrollment.isEnrolled ? "ambient" : "none",
                    snapshot.waypoint(forWorkload: key).binding?.gateway.namespacedName ?? "-",
                ])
            }
            printTable(rows)

            print("\nServices")
            rows = [["SERVICE", "ADDRESS", "ENDPOINTS", "WAYPOINT"]]
            for key in snapshot.services.keys.sorted() {
                let service = snapshot.services[key]!
                for port in service.ports where port.transport == .tcp {
                    for address in service.clusterIPs {
                        let binding = snapshot.service(at: IPEndpoint(address, port.port))
                        let endpoints = binding?.endpoints.map { "\($0.address)\($0.healthy ? "" : " (unhealthy)")" }
                        rows.append([
                            key.namespacedName,
                            IPEndpoint(address, port.port).description,
                            endpoints?.joined(separator: ",").nonEmpty ?? "-",
                            snapshot.waypoint(forService: key).binding?.gateway.namespacedName ?? "-",
                        ])
                    }
                }
            }
            printTable(rows)

            print("\nAuthorization: \(snapshot.authorization.policyCount) policies enforced at L4")
            for warning in snapshot.warnings {
                print("warning: \(warning)")
            }
        }
    }
}

/// Prints rows as left-aligned columns.
func printTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    for row in rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padded(to: widths[index])
        }
        print(cells.joined(separator: "  "))
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
