import AmbitTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A daemon's operational ports under trouble: a manifest clash shows in readiness and a metric while
/// the daemon stays ready on its last good configuration, and idle connections do not stay forever,
/// on the operational ports or on port 15008 (counted in `ambit_limit_hits_total`).
@Suite struct OperationalPortsTests {
    @Test func aManifestClashShowsInReadinessAndMetricsAndIdleConnectionsAreClosed() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-ops")
        defer { directory.remove() }
        let ca = directory.path + "/ca"
        #expect(try ProcessRunner.run(TestBinaries.path("ambitctl"), ["ca", "init", "--dir", ca]).status == 0)
        let manifests = directory.path + "/manifests"
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        let policy = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: misc, namespace: demo}
            spec: {action: ALLOW, rules: [{}]}
            """
        try policy.write(toFile: manifests + "/policy.yaml", atomically: true, encoding: .utf8)
        try policy.write(toFile: manifests + "/a-extra.yaml", atomically: true, encoding: .utf8)
        let (metrics, readiness, admin, hbone) = (
            TestPorts.free(), TestPorts.free(), TestPorts.free(),
            TestPorts.free()
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestBinaries.path("ambit-waypoint"))
        process.arguments = [
            "--gateway", "demo/waypoint", "--manifests", manifests, "--ca-dir", ca, "--listen", "127.0.0.1",
            "--hbone-port", "\(hbone)", "--metrics-port", "\(metrics)", "--readiness-port", "\(readiness)",
            "--admin-port", "\(admin)", "--operational-idle-seconds", "1", "--hbone-handshake-timeout-seconds", "1",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        var body = ""
        #expect(
            KubernetesModeTests.eventually {
                guard let answer = KubernetesModeTests.get("http://127.0.0.1:\(readiness)/healthz/ready") else {
                    return false
                }
                body = answer.body
                return answer.status == 200 && body.contains("config rejected:")
            },
            "\(body)"
        )
        // policy.yaml sorts after a-extra.yaml; whichever was read first keeps `misc`, the other is named.
        #expect(body.contains("already defined in \(manifests)/"), "\(body)")
        let scrape = KubernetesModeTests.get("http://127.0.0.1:\(metrics)/metrics")?.body ?? ""
        #expect(PrometheusSamples(scrape).sum("ambit_config_rejected") == 1, "\(scrape)")

        // A client that connects and sends nothing is let go after --operational-idle-seconds, and one
        // that never starts TLS on the HBONE port after --hbone-handshake-timeout-seconds.
        #expect(Self.silentClientIsLetGo(port: readiness))
        let before = KubernetesModeTests.get("http://127.0.0.1:\(metrics)/metrics")?.body ?? ""
        #expect(PrometheusSamples(before).sum("ambit_limit_hits_total", ["limit": "hbone_handshake_timeout"]) == 0)
        #expect(before.contains("ambit_limit_hits_total{limit=\"hbone_connections_per_source\"} 0"), "\(before)")
        #expect(Self.silentClientIsLetGo(port: hbone))
        let after = KubernetesModeTests.get("http://127.0.0.1:\(metrics)/metrics")?.body ?? ""
        #expect(PrometheusSamples(after).sum("ambit_limit_hits_total", ["limit": "hbone_handshake_timeout"]) == 1)
    }

    /// A JSON log is written by a background thread, in batches: the lines a daemon logs as it stops
    /// (info lines, held back to join a batch) still reach its standard error before it exits.
    @Test func aStoppingDaemonWritesItsLastLogLines() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-log")
        defer { directory.remove() }
        let ca = directory.path + "/ca"
        #expect(try ProcessRunner.run(TestBinaries.path("ambitctl"), ["ca", "init", "--dir", ca]).status == 0)
        let manifests = directory.path + "/manifests"
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        let log = directory.path + "/stderr"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let readiness = TestPorts.free()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestBinaries.path("ambit-waypoint"))
        process.arguments = [
            "--gateway", "demo/waypoint", "--manifests", manifests, "--ca-dir", ca, "--listen", "127.0.0.1",
            "--hbone-port", "\(TestPorts.free())", "--metrics-port", "\(TestPorts.free())",
            "--readiness-port", "\(readiness)", "--admin-port", "\(TestPorts.free())", "--drain-seconds", "0",
            "--log-format", "json",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
        let ready = KubernetesModeTests.eventually {
            KubernetesModeTests.get("http://127.0.0.1:\(readiness)/healthz/ready")?.status == 200
        }
        kill(process.processIdentifier, ready ? SIGTERM : SIGKILL)
        process.waitUntilExit()
        #expect(ready)
        #expect(process.terminationStatus == 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let messages = lines.map { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["message"] as? String ?? "not JSON: \(line)"
        }
        #expect(messages.first == "open files limit", "\(messages)")
        #expect(messages.suffix(2) == ["draining", "ambit-waypoint stopped"], "\(messages)")
    }

    /// Connects to 127.0.0.1:`port`, sends nothing, and says whether the server closed the connection
    /// (end of stream) before a 10 s receive timeout.
    static func silentClientIsLetGo(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return false }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }
}
