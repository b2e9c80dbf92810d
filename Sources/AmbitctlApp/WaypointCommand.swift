import AmbitConfig
import AmbitModel
import ArgumentParser

struct WaypointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waypoint",
        abstract: "Kubernetes manifests for waypoints.",
        subcommands: [Generate.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a waypoint (Gateway, ServiceAccount, Service, Deployment, PDB, RBAC) for kubectl apply.",
            discussion: """
                With --service-account: a waypoint for that service account's pods (Gateway annotated \
                istio.io/for-service-account). Without: a waypoint for the namespace, used by what carries \
                istio.io/use-waypoint=<name>. The CA Secret must exist in the namespace (ambitctl ca secret).
                  ambitctl waypoint generate --namespace demo --service-account reviews | kubectl apply -f -
                """
        )

        @Option(help: "The waypoint's namespace.")
        var namespace: String

        @Option(help: "Serve the pods of this service account (default: a namespace waypoint).")
        var serviceAccount: String?

        @Option(help: "Name of the Gateway and its objects (default: <service account>-waypoint, or waypoint).")
        var name: String?

        @Option(help: "Container image with ambit-waypoint (scripts/image builds it).")
        var image = "localhost/ambit:dev"

        @Option(help: "Replicas of the waypoint Deployment.")
        var replicas = 2

        func validate() throws {
            guard KubernetesNames.isDNSLabel(namespace) else {
                throw ValidationError("--namespace \"\(namespace)\" is not a valid namespace name (RFC 1123 label)")
            }
            if let serviceAccount, !KubernetesNames.isDNSSubdomain(serviceAccount) {
                throw ValidationError("--service-account \"\(serviceAccount)\" is not a valid service account name")
            }
            if let name, !KubernetesNames.isDNSLabel(name) {
                throw ValidationError("--name \"\(name)\" is not a valid name (RFC 1123 label)")
            }
            guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
            guard !image.isEmpty, !image.contains(where: \.isWhitespace) else {
                throw ValidationError("--image must be an image reference")
            }
        }

        func run() throws {
            let defaultName = serviceAccount.map { "\($0)-waypoint" } ?? "waypoint"
            let resolved = name ?? defaultName
            guard KubernetesNames.isDNSLabel(resolved) else {
                throw CLIError("\"\(resolved)\" is not a valid name; pass a shorter --name")
            }
            print(
                KubernetesManifests.waypoint(
                    .init(
                        namespace: namespace,
                        serviceAccount: serviceAccount,
                        name: resolved,
                        image: image,
                        replicas: replicas
                    )
                ),
                terminator: ""
            )
        }
    }
}
