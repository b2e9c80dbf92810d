import AmbitModel
import Foundation
import Testing

@testable import AmbitLab

@Suite struct LabSpecTests {
    static let minimal = """
        name: demo
        underlay: 172.31.0.0/24
        nodes:
          - name: node1
            podCIDR: 10.244.1.0/24
        namespaces:
          - name: demo
        pods:
          - name: client
            namespace: demo
            node: node1
        """

    /// Parses `minimal` with one line replaced, expecting an error whose message contains every fragment.
    func expectError(_ yaml: String, _ fragments: String...) {
        do {
            _ = try LabSpec.parse(yaml: yaml, file: "lab.yaml")
            Issue.record("expected an error containing \(fragments)")
        } catch {
            let message = "\(error)"
            for fragment in fragments {
                #expect(message.contains(fragment), "\(message)")
            }
        }
    }

    @Test func theCAModeIsServiceUnlessLocal() throws {
        let spec = try LabSpec.parse(yaml: Self.minimal, file: "lab.yaml")
        #expect(spec.usesCAService && spec.controlPlaneAddress.description == "172.31.0.10")
        let local = try LabSpec.parse(yaml: Self.minimal + "\nca: local", file: "lab.yaml")
        #expect(!local.usesCAService)
        expectError(Self.minimal + "\nca: istiod", "ca", "must be service (ambit-ca, the default) or local")
        expectError(
            Self.minimal.replacingOccurrences(of: "- name: node1", with: "- name: cp"),
            "is reserved (netns ambit-<lab>-ul, -cp, -p-<pod>)"
        )
    }

    @Test func defaultLabParses() throws {
        let spec = try LabSpec.defaultLab()
        #expect(spec.name == "demo")
        #expect(spec.mesh && spec.usesCAService)
        #expect(spec.nodes.map(\.name) == ["node1", "node2"])
        #expect(spec.underlayAddress(ofNodeAt: 0).description == "172.31.0.11")
        #expect(spec.underlayAddress(ofNodeAt: 1).description == "172.31.0.12")
        let pods = Dictionary(uniqueKeysWithValues: spec.pods.map { ($0.name, $0) })
        #expect(pods["client"]?.node == "node1")
        #expect(pods["server"]?.node == "node2")
        #expect(pods["server-2"]?.node == "node1")
        #expect(pods["server-2"]?.labels == ["app": "server"])
        #expect(pods["legacy-client"]?.namespace == "legacy")
        #expect(pods["legacy-client"]?.serviceAccount == "default")
        #expect(pods["client"]?.appPorts == [8080])
        let demo = try #require(spec.namespaces.first { $0.name == "demo" })
        let legacy = try #require(spec.namespaces.first { $0.name == "legacy" })
        #expect(Enrollment(podLabels: [:], namespaceLabels: demo.labels).isEnrolled)
        #expect(!Enrollment(podLabels: [:], namespaceLabels: legacy.labels).isEnrolled)
        #expect(spec.services.first?.clusterIP?.description == "10.96.0.10")
        #expect(spec.services.first?.ports.first == .init(name: "http", port: 80, targetPort: 8080, protocol: "TCP"))
    }

    @Test func defaultLabMatchesShippedExample() throws {
        let shipped = try String(
            contentsOf: LabCLI.packageRoot.appendingPathComponent("examples/lab/lab.yaml"),
            encoding: .utf8
        )
        #expect(shipped == LabSpec.defaultYAML)
    }

    @Test func defaults() throws {
        let spec = try LabSpec.parse(yaml: Self.minimal, file: "lab.yaml")
        #expect(spec.mesh)
        #expect(spec.pods[0].serviceAccount == "default")
        #expect(spec.pods[0].appPorts.isEmpty)
        #expect(spec.services.isEmpty && spec.manifests.isEmpty)
    }

    @Test func unknownTopLevelKeyNamesFileLineAndKey() {
        expectError(Self.minimal + "\nmeshh: false\n", "lab.yaml:12: meshh: unknown key \"meshh\"", "known keys: name")
    }

    @Test func unknownNestedKeyNamesItsPath() {
        let yaml = Self.minimal.replacingOccurrences(of: "    node: node1", with: "    node: node1\n    nodeName: x")
        expectError(yaml, "lab.yaml:12: pods[0].nodeName: unknown key")
        let ports = Self.minimal + "\n    app: {ports: [8080], protocol: tcp}\n"
        expectError(ports, "pods[0].app.protocol: unknown key")
    }

    @Test func badCIDRs() {
        expectError(
            Self.minimal.replacingOccurrences(of: "10.244.1.0/24", with: "10.244.1.0/33"),
            "lab.yaml:5: nodes[0].podCIDR: \"10.244.1.0/33\" is not an IPv4 CIDR"
        )
        expectError(
            Self.minimal.replacingOccurrences(of: "10.244.1.0/24", with: "10.244.1.7/24"),
            "nodes[0].podCIDR: \"10.244.1.7/24\" has host bits set; did you mean 10.244.1.0/24?"
        )
        expectError(
            Self.minimal.replacingOccurrences(of: "172.31.0.0/24", with: "172.31.0/24"),
            "lab.yaml:2: underlay: \"172.31.0/24\" is not an IPv4 CIDR"
        )
        expectError(
            Self.minimal.replacingOccurrences(of: "10.244.1.0/24", with: "172.31.0.128/25"),
            "overlaps the underlay"
        )
        let twoNodes = Self.minimal.replacingOccurrences(
            of: "namespaces:",
            with: "  - name: node2\n    podCIDR: 10.244.0.0/16\nnamespaces:"
        )
        expectError(twoNodes, "nodes[1].podCIDR: 10.244.0.0/16 overlaps node node1's podCIDR 10.244.1.0/24")
    }

    @Test func interfaceNameTooLong() {
        let yaml = Self.minimal.replacingOccurrences(of: "node1", with: "averylongnode1")
        expectError(
            yaml,
            "nodes[0].name: \"averylongnode1\" makes the underlay interface name \"ul-averylongnode1\" longer than 15",
            "at most 12 characters"
        )
    }

    @Test func badLabName() {
        expectError(
            Self.minimal.replacingOccurrences(of: "name: demo\n", with: "name: toolongname\n"),
            "1-8 characters"
        )
        expectError(Self.minimal.replacingOccurrences(of: "name: demo\n", with: "name: Demo\n"), "lab.yaml:1: name:")
    }

    @Test func references() {
        expectError(
            Self.minimal.replacingOccurrences(of: "    node: node1", with: "    node: node9"),
            "pods[0].node: no node named \"node9\" (nodes: node1)"
        )
        expectError(
            Self.minimal.replacingOccurrences(of: "    namespace: demo", with: "    namespace: prod"),
            "pods[0].namespace: namespace \"prod\" is not declared under namespaces"
        )
        let duplicate = Self.minimal + "\n  - {name: client, namespace: demo, node: node1}\n"
        expectError(duplicate, "pods[1].name: duplicate pod name \"client\"")
    }

    @Test func typeErrors() {
        expectError(Self.minimal + "\nmesh: maybe\n", "mesh: expected true or false")
        expectError(Self.minimal + "\n    app: {ports: [80000]}\n", "pods[0].app.ports[0]: 80000 is not a port")
        expectError(Self.minimal + "\n    labels: [a, b]\n", "pods[0].labels: expected a mapping")
        expectError("name: [\n", "lab.yaml:2: not valid YAML: did not find expected node content")
        expectError("", "the lab file is empty")
    }

    @Test func manifestsResolveRelativeToTheLabFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("labspec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "kind: AuthorizationPolicy\n".write(
            to: directory.appendingPathComponent("policy.yaml"),
            atomically: true,
            encoding: .utf8
        )
        let labFile = directory.appendingPathComponent("lab.yaml")
        try (Self.minimal + "\nmanifests: [policy.yaml]\n").write(to: labFile, atomically: true, encoding: .utf8)
        let spec = try LabSpec.load(path: labFile.path)
        #expect(spec.manifests == [directory.appendingPathComponent("policy.yaml").standardized.path])

        try (Self.minimal + "\nmanifests: [missing.yaml]\n").write(to: labFile, atomically: true, encoding: .utf8)
        #expect(throws: LabError.self) { try LabSpec.load(path: labFile.path) }
    }

    @Test func cidrArithmetic() throws {
        let cidr = try IPCIDR.lab("10.244.1.0/24").get()
        #expect(cidr.contains(try #require(IPAddress("10.244.1.255"))))
        #expect(!cidr.contains(try #require(IPAddress("10.244.2.0"))))
        #expect(cidr.address(at: 11).description == "10.244.1.11")
        #expect(IPAddress("01.2.3.4") == nil)
        #expect(IPAddress("1.2.3.256") == nil)
        #expect(IPCIDR.lab("10.0.0.1/8") == .failure(.hostBitsSet(network: "10.0.0.0/8")))
        #expect(IPCIDR.lab("10.0.0.0") == .failure(.malformed), "the lab wants an explicit length")
        #expect(IPCIDR.lab("fd00::/64") == .failure(.malformed), "the lab is IPv4")
    }
}
