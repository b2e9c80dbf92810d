import AmbitIdentity
import AmbitTestSupport
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// `HBONEBench tls-backends`: bulk throughput and 1 KiB latency through the minimal HBONE path
/// (MiniHBONE.swift) with BoringSSL (swift-nio-ssl) and with the system's OpenSSL, beside direct
/// and Ambit's own HBONE path, interleaved in one run.
func tlsBackends(quick: Bool) async throws {
    let pki = try TestPKI(now: Date() - 3600)
    let serverCertificate = try pki.issue(.test("bench", "server"), now: Date() - 60)
    let clientCertificate = try pki.issue(.test("bench", "client"), now: Date() - 60)
    let roots = [pki.authority.root]
    let engines = [
        try TLSEngine.boringSSL(server: serverCertificate, client: clientCertificate, roots: roots),
        try TLSEngine.openSSL(
            server: serverCertificate,
            client: clientCertificate,
            roots: roots,
            ciphersuites: "TLS_AES_128_GCM_SHA256"
        ),
        try TLSEngine.openSSL(server: serverCertificate, client: clientCertificate, roots: roots, ciphersuites: nil),
    ]
    print("## TLS engines on the HBONE path (OpenSSL: \(OpenSSLContext.version))\n")
    print("Minimal HBONE path (TLS 1.3 + HTTP/2 CONNECT, Ambit's HTTP/2 settings, one connection per tunnel);")
    print("BoringSSL and OpenSSL negotiate TLS_AES_128_GCM_SHA256, \"default suites\" is OpenSSL's own order")
    print("(TLS_AES_256_GCM_SHA384 first; OpenSSL's suite is checked at every handshake). `ambit hbone` is")
    print("Ambit's full path (pool, policy hooks, guards).\n")

    for (mode, behaviour) in [("throughput", BenchSink.Mode.count), ("latency", .echo)] {
        let paths = try await Paths(sinkBehaviour: behaviour)
        let sinkAuthority = "127.0.0.1:\(paths.port("direct"))"
        var ports: [(name: String, port: Int)] = [
            ("direct", paths.port("direct")), ("ambit hbone", paths.port("hbone")),
        ]
        var listeners: [any Channel] = []
        for engine in engines {
            let terminator = try await MiniHBONE.terminator(engine: engine, group: paths.serverGroup)
            let forwarder = try await MiniHBONE.forwarder(
                engine: engine,
                group: paths.forwarderGroup,
                terminator: terminator.localAddress!,
                authority: sinkAuthority
            )
            listeners += [terminator, forwarder]
            ports.append(("minimal, \(engine.name)", forwarder.localAddress!.port!))
        }
        // `--path OpenSSL` keeps direct and the paths whose name contains it (for `perf record`).
        if let onlyPath { ports = ports.filter { $0.name == "direct" || $0.name.contains(onlyPath) } }
        if mode == "throughput" {
            try await backendThroughput(paths: paths, ports: ports, quick: quick)
        } else {
            try await backendLatency(paths: paths, ports: ports, quick: quick)
        }
        for listener in listeners { try await listener.close() }
    }
}

private func backendThroughput(paths: Paths, ports: [(name: String, port: Int)], quick: Bool) async throws {
    let size = quick ? 256 << 20 : 2 << 30
    let repetitions = quick ? 1 : 3
    let results = try await bulkThroughput(
        ports,
        group: paths.clientGroup,
        size: size,
        repetitions: repetitions
    )
    let direct = median(results["direct"]!)
    let boring = results["minimal, BoringSSL"].map(median) ?? .nan
    print("### Bulk throughput, one connection (\(size >> 20) MiB per run, \(repetitions) runs each, interleaved)\n")
    print("| path | Gbit/s (median) | runs | × direct | × minimal BoringSSL |")
    print("|---|---:|---|---:|---:|")
    for (name, _) in ports {
        let value = median(results[name]!)
        let runs = results[name]!.map { String(format: "%.2f", $0) }.joined(separator: ", ")
        print(String(format: "| %@ | %.2f | %@ | %.2f | %.2f |", name, value, runs, value / direct, value / boring))
    }
    print("")
}

private func backendLatency(paths: Paths, ports: [(name: String, port: Int)], quick: Bool) async throws {
    let rounds = quick ? 2_000 : 20_000
    print("### 1 KiB request/response latency (\(rounds) sequential round trips on one connection)\n")
    print("| path | p50 µs | p90 µs | p99 µs |")
    print("|---|---:|---:|---:|")
    for (name, port) in ports {
        let histogram = try await roundTrips(port: port, group: paths.clientGroup, rounds: rounds)
        func us(_ percentile: Double) -> String { microseconds(histogram, percentile) }
        print("| \(name) | \(us(50)) | \(us(90)) | \(us(99)) |")
    }
    print("")
}
