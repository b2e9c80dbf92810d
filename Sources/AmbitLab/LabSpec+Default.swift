extension LabSpec {
    /// The default lab, built by `ambitctl lab up` without `--file`. The same text ships as
    /// `examples/lab/lab.yaml` (a test keeps the two equal).
    public static let defaultYAML = """
        # The default Ambit lab: `ambitctl lab up` builds it when no --file is given.
        # Two nodes; the `demo` namespace is enrolled in the ambient mesh, `legacy` is not.
        name: demo                 # [a-z0-9-]{1,8}: part of every netns name (ambit-demo-...)
        underlay: 172.31.0.0/24    # node IPs .11, .12, ... on a bridge inside netns ambit-demo-ul
        mesh: true                 # false = no ambit-cni, no agents (plain network; baselines, benchmarks)
        ca: service                # ambit-ca in netns ambit-demo-cp (.10); local = every agent reads the CA key
        nodes:
          - name: node1
            podCIDR: 10.244.1.0/24
          - name: node2
            podCIDR: 10.244.2.0/24
        namespaces:
          - name: demo
            labels: {istio.io/dataplane-mode: ambient}
          - name: legacy
        pods:
          - name: client
            namespace: demo
            node: node1
            serviceAccount: client
            labels: {app: client}
            workload: {kind: Deployment, name: client}   # owner references, as a Deployment's ReplicaSet writes them
            app: {ports: [8080]}
          - name: server
            namespace: demo
            node: node2
            serviceAccount: server
            labels: {app: server}
            workload: {kind: Deployment, name: server}
            app: {ports: [8080]}
            # Run by the lab's kubelet from node2 (lab status shows READY), as a kubelet probes from the node.
            readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
            livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
          - name: server-2           # second replica, on the client's node (same-node traffic)
            namespace: demo
            node: node1
            serviceAccount: server
            labels: {app: server}
            workload: {kind: Deployment, name: server}
            app: {ports: [8080]}
            readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
          - name: legacy-client
            namespace: legacy
            node: node1
            labels: {app: legacy-client}
            app: {ports: [8080]}
        services:
          - name: server
            namespace: demo
            clusterIP: 10.96.0.10
            selector: {app: server}
            ports: [{name: http, port: 80, targetPort: 8080}]
        manifests: []              # extra manifest files (relative to this file), e.g. policies

        """

    /// The parsed default lab.
    public static func defaultLab() throws -> LabSpec {
        try parse(yaml: defaultYAML, file: "<built-in default lab>")
    }
}
