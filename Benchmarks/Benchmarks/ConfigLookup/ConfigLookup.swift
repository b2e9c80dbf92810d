import AmbitConfig
import AmbitModel
import Benchmark

/// 100,000 pods over 100 namespaces and 10 nodes, with 2,000 services selecting them.
func makeObjects(pods: Int) -> [ManifestObject] {
    var objects: [ManifestObject] = []
    objects.reserveCapacity(pods + pods / 50 + 100)
    for namespace in 0..<100 {
        objects.append(
            .namespace(
                Namespace(metadata: ObjectMeta(name: "ns\(namespace)", labels: ["istio.io/dataplane-mode": "ambient"]))
            )
        )
    }
    for index in 0..<pods {
        let pod = Pod(
            metadata: ObjectMeta(
                name: "pod-\(index)",
                namespace: "ns\((index / 50) % 100)",
                labels: ["app": "app\(index / 50)", "pod-template-hash": "h\(index % 7)"]
            ),
            nodeName: "node-\(index % 10)",
            serviceAccountName: "sa\(index / 50)",
            containerPorts: [ContainerPort(name: "http", containerPort: 8080)],
            podIPs: [.v4(0x0A00_0000 | UInt32(index))],
            phase: .running,
            ready: true
        )
        objects.append(.pod(pod))
    }
    for service in 0..<(pods / 50) {
        objects.append(
            .service(
                Service(
                    metadata: ObjectMeta(name: "svc-\(service)", namespace: "ns\(service % 100)"),
                    clusterIPs: [.v4(0x6000_0000 | UInt32(service))],
                    selector: LabelSelector(matchLabels: ["app": "app\(service)"]),
                    ports: [ServicePort(name: "http", port: 80, targetPort: .name("http"))]
                )
            )
        )
    }
    return objects
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(5),
        maxIterations: 1_000_000
    )
    let objects = makeObjects(pods: 100_000)
    let snapshot = ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 1)
    let addresses = (0..<1024).map { IPAddress.v4(0x0A00_0000 | UInt32(($0 * 9973) % 100_000)) }
    let vips = (0..<1024).map { IPEndpoint(.v4(0x6000_0000 | UInt32(($0 * 7) % 2000)), 80) }
    precondition(snapshot.workload(at: addresses[5]) != nil && snapshot.service(at: vips[5])?.endpoints.count == 50)

    Benchmark("Workload by IP, 100k pods") { benchmark in
        for iteration in benchmark.scaledIterations {
            blackHole(snapshot.workload(at: addresses[iteration & 1023]))
        }
    }
    Benchmark("Service by VIP:port with endpoints, 100k pods") { benchmark in
        for iteration in benchmark.scaledIterations {
            blackHole(snapshot.service(at: vips[iteration & 1023]))
        }
    }
    Benchmark(
        "Build snapshot, 100k pods + 2k services",
        configuration: .init(maxDuration: .seconds(60), maxIterations: 5)
    ) { _ in
        blackHole(ConfigSnapshot(objects: objects, options: ConfigOptions(), version: 2))
    }
}
