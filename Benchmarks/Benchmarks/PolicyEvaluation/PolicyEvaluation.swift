import AmbitModel
import AmbitPolicy
import Benchmark

/// 10,000 AuthorizationPolicies in one namespace: most select one app each (the common
/// "one policy per workload" layout), some apply namespace-wide or mesh-wide, and each has
/// several rules with principals, namespaces, IP blocks and ports.
func makePolicies(count: Int) -> [AuthorizationPolicy] {
    var policies: [AuthorizationPolicy] = []
    policies.reserveCapacity(count)
    for index in 0..<count {
        var first = AuthorizationPolicy.Source()
        first.principals = [.exact("cluster.local/ns/bench/sa/client\(index)"), .prefix("cluster.local/ns/ops/")]
        var second = AuthorizationPolicy.Source()
        second.namespaces = [.exact("monitoring")]
        second.ipBlocks = [IPCIDR(address: .v4(0x0A00_0000 | UInt32(index)), prefixLength: 24)]
        var operation = AuthorizationPolicy.Operation()
        operation.ports = [8080, 9090]
        let rules = [
            AuthorizationPolicy.Rule(from: [first], to: [operation]),
            AuthorizationPolicy.Rule(from: [second]),
        ]
        let isWide = index % 1000 == 0
        policies.append(
            AuthorizationPolicy(
                metadata: ObjectMeta(name: "policy-\(index)", namespace: index % 5000 == 0 ? "istio-system" : "bench"),
                selector: isWide ? nil : LabelSelector(matchLabels: ["app": "app\(index)", "tier": "backend"]),
                action: index % 97 == 0 ? .deny : .allow,
                rules: index % 97 == 0 ? [AuthorizationPolicy.Rule(from: [second])] : rules
            )
        )
    }
    return policies
}

func request(app: Int, client: Int, port: UInt16) -> AuthorizationRequest {
    AuthorizationRequest(
        destinationNamespace: "bench",
        destinationLabels: ["app": "app\(app)", "tier": "backend", "version": "v1"],
        sourceIdentity: try? SpiffeID(namespace: "bench", serviceAccount: "client\(client)"),
        sourceAddress: .v4(0xC0A8_0001),
        destinationAddress: .v4(0x0A01_0001),
        destinationPort: port
    )
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(5),
        maxIterations: 1_000_000
    )
    let engine = AuthorizationEngine(policies: makePolicies(count: 10_000))
    let allowed = request(app: 4321, client: 4321, port: 8080)
    let denied = request(app: 4321, client: 1, port: 8080)
    precondition(engine.evaluate(allowed).isAllowed && !engine.evaluate(denied).isAllowed)

    Benchmark("Evaluate, 10k policies, allowed") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.evaluate(allowed))
        }
    }
    Benchmark("Evaluate, 10k policies, denied") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(engine.evaluate(denied))
        }
    }
    Benchmark("Compile 10k policies", configuration: .init(maxIterations: 20)) { benchmark in
        let policies = makePolicies(count: 10_000)
        benchmark.startMeasurement()
        blackHole(AuthorizationEngine(policies: policies))
    }
}
