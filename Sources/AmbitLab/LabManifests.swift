import AmbitModel
import FoundationEssentials

/// The Kubernetes objects the lab writes into its manifest directory, which the agents watch:
/// `namespaces.yaml` (Namespaces + ServiceAccounts), `services.yaml`, `pods.yaml`, `gateways.yaml` (one waypoint
/// Gateway per waypoint pod), plus copied extra manifests.
/// Every write is atomic (temporary file + rename).
struct LabManifests: Sendable {
    static let namespacesFile = "namespaces.yaml"
    static let servicesFile = "services.yaml"
    static let podsFile = "pods.yaml"
    static let gatewaysFile = "gateways.yaml"
    static let generatedFiles: Set<String> = [namespacesFile, servicesFile, podsFile, gatewaysFile]

    let directory: String

    func writeNamespaces(_ spec: LabSpec) throws {
        var documents: [any Encodable] = spec.namespaces.map {
            Object(kind: "Namespace", metadata: Metadata(name: $0.name, labels: StringMap($0.labels)))
        }
        var seen = Set<String>()
        for pod in spec.pods where seen.insert(pod.namespace + "/" + pod.serviceAccount).inserted {
            documents.append(
                Object(kind: "ServiceAccount", metadata: Metadata(name: pod.serviceAccount, namespace: pod.namespace))
            )
        }
        try write(documents, to: Self.namespacesFile)
    }

    func writeServices(_ spec: LabSpec) throws {
        let documents: [any Encodable] = spec.services.map { service in
            Object(
                kind: "Service",
                metadata: Metadata(name: service.name, namespace: service.namespace, labels: StringMap(service.labels)),
                spec: ServiceSpec(
                    clusterIP: service.clusterIP?.description,
                    selector: StringMap(service.selector),
                    ports: service.ports.map {
                        ServicePort(name: $0.name, protocol: $0.protocol, port: $0.port, targetPort: $0.targetPort)
                    }
                ),
                status: Never?.none
            )
        }
        try write(documents, to: Self.servicesFile)
    }

    /// `pods`: the lab's pods so far with their record (uid, and IP once CNI ADD returned).
    func writePods(_ pods: [(spec: LabSpec.Pod, record: LabRecord.PodRecord)]) throws {
        let documents: [any Encodable] = pods.map { pod in
            var labels = pod.spec.labels
            var metadata = Metadata(name: pod.spec.name, namespace: pod.spec.namespace, uid: pod.record.uid)
            if let owner = pod.spec.workload?.owner {
                labels.merge(owner.labels) { mine, _ in mine }
                metadata.generateName = owner.name + "-"
                metadata.ownerReferences = [
                    OwnerReference(apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, controller: true)
                ]
            }
            metadata.labels = labels.isEmpty ? nil : StringMap(labels)
            return Object(
                kind: "Pod",
                metadata: metadata,
                spec: PodSpec(
                    nodeName: pod.spec.node,
                    serviceAccountName: pod.spec.serviceAccount,
                    containers: [
                        Container(name: "app", ports: pod.spec.appPorts.map { ContainerPort(containerPort: $0) })
                    ]
                ),
                status: pod.record.ip.map {
                    PodStatus(phase: "Running", podIP: $0, podIPs: [PodIP(ip: $0)])
                } ?? PodStatus(phase: "Pending")
            )
        }
        try write(documents, to: Self.podsFile)
        try writeGateways(pods)
    }

    /// A Gateway of class `istio-waypoint` for each waypoint pod, addressed by the pod's IP once it has one.
    private func writeGateways(_ pods: [(spec: LabSpec.Pod, record: LabRecord.PodRecord)]) throws {
        let documents: [any Encodable] = pods.compactMap { pod in
            guard let waypoint = pod.spec.waypoint else { return nil }
            var labels = ["istio.io/waypoint-for": waypoint.trafficType]
            labels["gateway.istio.io/managed"] = "ambitctl-lab"
            var annotations = ["gateway.istio.io/service-account": pod.spec.serviceAccount]
            if let account = waypoint.forServiceAccount { annotations["istio.io/for-service-account"] = account }
            var metadata = Metadata(name: pod.spec.name, namespace: pod.spec.namespace, labels: StringMap(labels))
            metadata.annotations = StringMap(annotations)
            return Object(
                apiVersion: "gateway.networking.k8s.io/v1",
                kind: "Gateway",
                metadata: metadata,
                spec: GatewaySpec(
                    gatewayClassName: "istio-waypoint",
                    listeners: [GatewayListener(name: "mesh", port: 15008, protocol: "HBONE")]
                ),
                status: pod.record.ip.map { GatewayStatus(addresses: [GatewayAddress(type: "IPAddress", value: $0)]) }
            )
        }
        try write(documents, to: Self.gatewaysFile)
    }

    /// Copies a manifest into the directory (atomically) and returns its new path.
    @discardableResult
    func copy(_ source: String) throws -> String {
        let name = URL(fileURLWithPath: source).lastPathComponent
        guard !Self.generatedFiles.contains(name) else {
            throw LabError("\(name) is written by the lab itself; rename your file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: source))
        } catch {
            throw LabError("cannot read \(source): \(error.readableDescription)")
        }
        let target = URL(fileURLWithPath: directory).appendingPathComponent(name).path
        try AtomicFile.write(data, to: target)
        return target
    }

    private func write(_ documents: [any Encodable], to file: String) throws {
        let encoder = JSONEncoder()
        var text = "# Written by `ambitctl lab`; edit with `ambitctl lab label`/`apply`.\n"
        for (index, document) in documents.enumerated() {
            if index > 0 { text += "---\n" }
            text += YAMLText.document(try JSONValue.parse(encoder.encode(AnyEncodable(document))))
        }
        try AtomicFile.write(text, to: URL(fileURLWithPath: directory).appendingPathComponent(file).path)
    }

    // MARK: - Shapes (written with their keys sorted)

    struct Object<Spec: Encodable, Status: Encodable>: Encodable {
        var apiVersion = "v1"
        var kind: String
        var metadata: Metadata
        var spec: Spec?
        var status: Status?
    }

    struct Metadata: Encodable {
        var name: String
        var generateName: String?
        var namespace: String?
        var uid: String?
        var labels: StringMap?
        var annotations: StringMap?
        var ownerReferences: [OwnerReference]?

        init(name: String, namespace: String? = nil, uid: String? = nil, labels: StringMap? = nil) {
            self.name = name
            self.namespace = namespace
            self.uid = uid
            self.labels = labels?.isEmpty == true ? nil : labels
        }
    }

    struct OwnerReference: Encodable {
        var apiVersion: String
        var kind: String
        var name: String
        var controller: Bool
    }

    struct GatewaySpec: Encodable {
        var gatewayClassName: String
        var listeners: [GatewayListener]
    }

    struct GatewayListener: Encodable {
        var name: String
        var port: Int
        var `protocol`: String
    }

    struct GatewayStatus: Encodable {
        var addresses: [GatewayAddress]
    }

    struct GatewayAddress: Encodable {
        var type: String
        var value: String
    }

    struct ServiceSpec: Encodable {
        var clusterIP: String?
        var selector: StringMap
        var ports: [ServicePort]
    }

    struct ServicePort: Encodable {
        var name: String?
        var `protocol`: String
        var port: Int
        var targetPort: Int
    }

    struct PodSpec: Encodable {
        var nodeName: String
        var serviceAccountName: String
        var containers: [Container]
    }

    struct Container: Encodable {
        var name: String
        var ports: [ContainerPort]
    }

    struct ContainerPort: Encodable {
        var containerPort: Int
        var `protocol` = "TCP"
    }

    struct PodStatus: Encodable {
        var phase: String
        var podIP: String?
        var podIPs: [PodIP]?
    }

    struct PodIP: Encodable {
        var ip: String
    }

    /// A string map encoded with sorted keys, so files are stable from run to run.
    struct StringMap: Encodable {
        var entries: [(String, String)]
        var isEmpty: Bool { entries.isEmpty }

        init(_ map: [String: String]) {
            entries = map.sorted { $0.key < $1.key }
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for (key, value) in entries { try container.encode(value, forKey: Key(stringValue: key)) }
        }
    }

    private struct AnyEncodable: Encodable {
        let wrapped: any Encodable
        init(_ wrapped: any Encodable) { self.wrapped = wrapped }
        func encode(to encoder: any Encoder) throws { try wrapped.encode(to: encoder) }
    }
}

extension LabManifests.Object where Spec == Never, Status == Never {
    init(kind: String, metadata: LabManifests.Metadata) {
        self.init(kind: kind, metadata: metadata, spec: nil, status: nil)
    }
}
