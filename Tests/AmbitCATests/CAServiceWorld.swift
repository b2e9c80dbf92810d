import AmbitCA
import AmbitIdentity
import AmbitTestSupport
import Crypto
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A running `ambit-ca` on 127.0.0.1 (the built executable, as an operator runs it), with its CA, token
/// key and a manifest directory placing `demo/client` on node1 and `demo/server` on node2.
final class CAServiceWorld: @unchecked Sendable {
    static let python = ProcessInfo.processInfo.environment["AMBIT_PYTHON"] ?? "/usr/bin/python3"
    static let client = TestBinaries.packageRoot.appendingPathComponent("Tests/Interop/istio_ca_client.py").path

    let directory: TemporaryDirectory
    let tokenKey = P256.Signing.PrivateKey()
    let port = TestPorts.free()
    let metricsPort = TestPorts.free()
    let process = Process()
    var caDirectory: String { directory.path + "/ca" }
    /// The CA's root (in istio-ca-secret's layout root-cert.pem is empty: the self-signed ca-cert.pem is the root).
    var rootsFile: String { directory.path + "/roots.pem" }
    var logFile: String { directory.path + "/ca.log" }
    var address: String { "127.0.0.1:\(port)" }

    enum Layout {
        /// `ambitctl ca init`: Istio's cacerts with an ECDSA P-256 key.
        case cacerts
        /// Istio's cacerts with an RSA 2048 key, as openssl makes them.
        case rsaCacerts
        /// Istio's self-signed `istio-ca-secret`: ca-cert.pem and ca-key.pem, and cert-chain.pem, key.pem and
        /// root-cert.pem present but empty.
        case istioCASecret
    }

    private init(layout: Layout, arguments extra: [String]) throws {
        directory = try TemporaryDirectory(prefix: "ambit-ca-test")
        switch layout {
        case .cacerts:
            try CertificateAuthority.generate().save(to: caDirectory)
        case .rsaCacerts:
            try Self.makeRSACA(in: caDirectory)
        case .istioCASecret:
            try CertificateAuthority.generate().save(to: caDirectory)
            for file in ["cert-chain.pem", "root-cert.pem", "key.pem"] {
                try "".write(toFile: caDirectory + "/" + file, atomically: true, encoding: .utf8)
            }
        }
        try FileManager.default.copyItem(atPath: caDirectory + "/ca-cert.pem", toPath: rootsFile)
        try (tokenKey.publicKey.pemRepresentation + "\n").write(
            toFile: directory.path + "/token.pub",
            atomically: true,
            encoding: .utf8
        )
        try FileManager.default.createDirectory(atPath: directory.path + "/m", withIntermediateDirectories: true)
        try Manifests.join([
            Manifests.namespace("demo"),
            Manifests.pod("client", namespace: "demo", ip: "10.244.1.2", node: "node1", serviceAccount: "client"),
            Manifests.pod("server", namespace: "demo", ip: "10.244.2.2", node: "node2", serviceAccount: "server"),
            // node1's agent pod, and a pod of another account in its namespace on node2.
            Manifests.namespace("ambit-system"),
            Manifests.pod("ambit-node-x7k2p", namespace: "ambit-system", node: "node1", serviceAccount: "ambit-node"),
            Manifests.pod("impostor", namespace: "ambit-system", node: "node2", serviceAccount: "other"),
        ]).write(toFile: directory.path + "/m/pods.yaml", atomically: true, encoding: .utf8)
        // Through python3, which clears the signal mask before exec: the test runner's threads block signals, and a
        // child would inherit that (SIGTERM must reach ambit-ca).
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments =
            [
                "-c",
                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                TestBinaries.path("ambit-ca"),
                "--ca-dir", caDirectory, "--manifests", directory.path + "/m",
                "--token-public-key", directory.path + "/token.pub",
                "--listen", "127.0.0.1", "--port", "\(port)", "--server-name", "127.0.0.1",
                "--metrics-port", "\(metricsPort)", "--readiness-port", "\(TestPorts.free())",
                "--admin-port", "\(TestPorts.free())",
            ] + extra
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    /// Starts one (with `arguments` added to its command line) and waits for its "started" log line.
    static func start(_ layout: Layout = .cacerts, arguments: [String] = []) async throws -> CAServiceWorld {
        let world = try CAServiceWorld(layout: layout, arguments: arguments)
        _ = await eventually(timeout: .seconds(30)) {
            world.log.contains("ambit-ca started") || !world.process.isRunning
        }
        guard world.process.isRunning, world.log.contains("ambit-ca started") else {
            throw CAWorldError("ambit-ca did not start: \(world.log)")
        }
        return world
    }

    deinit { stop() }

    func stop() {
        kill()
        directory.remove()
    }

    /// Kills the CA (SIGKILL), keeping its files.
    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// A token signed with the CA's trusted token key (or `key`).
    func token(
        namespace: String = "ambit-system",
        serviceAccount: String = "ambit-node",
        node: String? = "node1",
        pod: String? = nil,
        audience: String = "ambit-ca",
        issued: Date = Date(),
        lifetime: TimeInterval = 3600,
        key: P256.Signing.PrivateKey? = nil
    ) throws -> String {
        try ServiceAccountToken(
            issuer: "test",
            audiences: [audience],
            namespace: namespace,
            serviceAccount: serviceAccount,
            podName: pod,
            nodeName: node,
            issuedAt: issued,
            expiry: issued + lifetime
        ).signed(with: key ?? tokenKey)
    }

    struct Answer {
        let status: Int32
        let chain: [String]
        let error: String
    }

    /// One CreateCertificate call from the independent Python grpcio client.
    func request(
        _ spiffe: String,
        token: String?,
        impersonate: Bool = true,
        csr: String? = nil,
        keyOut: String? = nil
    ) throws -> Answer {
        // A generous deadline: under the full suite both cores are busy and ambit-ca is a debug build.
        var arguments = [Self.client, "--address", address, "--ca", rootsFile, "--spiffe", spiffe, "--timeout", "60"]
        if let token { arguments += ["--token", token] }
        if impersonate { arguments.append("--impersonate") }
        if let csr {
            let path = directory.path + "/csr-\(UUID().uuidString)"
            try csr.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["--csr-file", path]
        }
        if let keyOut { arguments += ["--key-out", keyOut] }
        let result = try ProcessRunner.run(Self.python, arguments)
        let chain = result.standardOutput.split(separator: "\n").compactMap { line -> String? in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["pem"] as? String
        }
        return Answer(status: result.status, chain: chain, error: result.standardError)
    }

    /// The serving certificate a TLS client is shown now, verified by openssl against `roots` (a PEM file; the
    /// CA's roots by default): its serial number and expiry.
    func servingCertificate(roots: String? = nil) throws -> (serial: String, notAfter: Date) {
        let shown = try ProcessRunner.run(
            "/usr/bin/openssl",
            ["s_client", "-connect", address, "-alpn", "h2", "-CAfile", roots ?? rootsFile, "-verify_return_error"],
            input: ""
        )
        guard shown.standardOutput.contains("Verify return code: 0 (ok)") else {
            throw CAWorldError("openssl s_client did not verify the serving certificate: \(shown.standardError)")
        }
        let fields = try ProcessRunner.run(
            "/usr/bin/openssl",
            ["x509", "-noout", "-serial", "-enddate", "-dateopt", "iso_8601"],
            input: shown.standardOutput
        ).standardOutput
        var values: [String: String] = [:]
        for line in fields.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        let formatter = DateFormatter()  // -dateopt iso_8601 prints "2026-12-08 15:44:35Z"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        guard let serial = values["serial"], let notAfter = values["notAfter"].flatMap(formatter.date(from:)) else {
            throw CAWorldError("openssl x509 printed no serial or expiry: \(fields)")
        }
        return (serial, notAfter)
    }

    /// The metrics page.
    func metrics() throws -> String {
        try ProcessRunner.run("/usr/bin/curl", ["-s", "-m", "5", "http://127.0.0.1:\(metricsPort)/metrics"])
            .standardOutput
    }

    /// An Istio-style plugged-in CA with an RSA 2048 key, made by openssl: ca-key.pem is PKCS#1
    /// ("RSA PRIVATE KEY"), as `istioctl`'s and Istio's docs' Makefiles produce.
    static func makeRSACA(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = directory + "/ca-key.pem"
        let certificate = directory + "/ca-cert.pem"
        for arguments in [
            ["genrsa", "-traditional", "-out", key, "2048"],
            [
                "req", "-x509", "-new", "-key", key, "-sha256", "-days", "30", "-subj", "/O=cluster.local/CN=Root CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", certificate,
            ],
        ] {
            let result = try ProcessRunner.run("/usr/bin/openssl", arguments)
            guard result.status == 0 else { throw CAWorldError("openssl \(arguments[0]): \(result.standardError)") }
        }
        try FileManager.default.copyItem(atPath: certificate, toPath: directory + "/root-cert.pem")
        try FileManager.default.copyItem(atPath: certificate, toPath: directory + "/cert-chain.pem")
    }

    /// A CSR made by openssl with `extensions` (`-addext` values) and a fresh P-256 key.
    func openSSLCSR(_ extensions: [String]) throws -> String {
        let path = directory.path + "/made-\(UUID().uuidString)"
        var arguments = [
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", path + ".key", "-subj", "/", "-out", path + ".csr",
        ]
        for value in extensions { arguments += ["-addext", value] }
        let result = try ProcessRunner.run("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw CAWorldError("openssl req: \(result.standardError)") }
        return try String(contentsOfFile: path + ".csr", encoding: .utf8)
    }
}

struct CAWorldError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
