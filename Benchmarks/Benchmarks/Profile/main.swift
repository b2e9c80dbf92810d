import AmbitModel
import AmbitPolicy

// A plain loop over one hot path, for `perf record` or `valgrind --tool=callgrind`:
//   swift build -c release --product Profile && valgrind --tool=callgrind .build/release/Profile policy 10000
// Workloads: policy (evaluate against 10,000 policies), lookup (workload by IP among 100,000 pods).

let arguments = CommandLine.arguments
let workload = arguments.count > 1 ? arguments[1] : "policy"
let iterations = arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000

switch workload {
case "policy":
    var policies: [AuthorizationPolicy] = []
    for index in 0..<10_000 {
        var first = AuthorizationPolicy.Source()
        first.principals = [.exact("cluster.local/ns/bench/sa/client\(index)"), .prefix("cluster.local/ns/ops/")]
        var second = AuthorizationPolicy.Source()
        second.namespaces = [.exact("monitoring")]
        var operation = AuthorizationPolicy.Operation()
        operation.ports = [8080, 9090]
        policies.append(
            AuthorizationPolicy(
                metadata: ObjectMeta(name: "policy-\(index)", namespace: "bench"),
                selector: index % 1000 == 0
                    ? nil : LabelSelector(matchLabels: ["app": "app\(index)", "tier": "backend"]),
                rules: [
                    AuthorizationPolicy.Rule(from: [first], to: [operation]), AuthorizationPolicy.Rule(from: [second]),
                ]
            )
        )
    }
    let engine = AuthorizationEngine(policies: policies)
    let request = AuthorizationRequest(
        destinationNamespace: "bench",
        destinationLabels: ["app": "app4321", "tier": "backend", "version": "v1"],
        sourceIdentity: try SpiffeID(namespace: "bench", serviceAccount: "client4321"),
        sourceAddress: .v4(0xC0A8_0001),
        destinationAddress: .v4(0x0A01_0001),
        destinationPort: 8080
    )
    var allowed = 0
    for _ in 0..<iterations where engine.evaluate(request).isAllowed { allowed += 1 }
    print("allowed \(allowed) of \(iterations)")
default:
    print("unknown workload \(workload)")
}
