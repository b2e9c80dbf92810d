import AmbitCA
import AmbitCLI
import Testing

/// Where the daemons' certificates come from, as their command lines say it.
@Suite struct CertificateOptionsTests {
    @Test func istioCAMeansIstiodWithZtunnelsPaths() throws {
        let options = try CertificateOptions.parse(["--istio-ca"])
        guard case .remote(let remote, let trustDomain) = options.selection(impersonate: true, clusterID: "c1") else {
            Issue.record("--istio-ca is a CA service")
            return
        }
        #expect(remote.address == "istiod.istio-system.svc:15012")
        #expect(remote.rootsFile == "/var/run/secrets/istio/root-cert.pem")
        #expect(remote.tokenFile == "/var/run/secrets/tokens/istio-token")
        #expect(remote.impersonate && remote.clusterID == "c1" && trustDomain == "cluster.local")
    }

    @Test func aCAServiceOrACADirectoryNeverBoth() throws {
        let remote = try CertificateOptions.parse([
            "--ca-address", "ca:15012", "--ca-roots", "roots.pem", "--ca-token-file", "t", "--trust-domain",
            "example.org",
        ])
        guard case .remote(let options, "example.org") = remote.selection(impersonate: false, clusterID: nil) else {
            Issue.record("expected the CA service in example.org")
            return
        }
        #expect(options.address == "ca:15012" && !options.impersonate && options.tokenFile == "t")
        guard
            case .localCA("ca/", nil) = try CertificateOptions.parse(["--ca-dir", "ca/"])
                .selection(impersonate: true, clusterID: nil)
        else {
            Issue.record("expected the local CA")
            return
        }
        for (arguments, message) in [
            ([String](), "give exactly one of --ca-address (or --istio-ca) and --ca-dir"),
            (["--ca-dir", "d", "--ca-address", "a:1", "--ca-roots", "r"], "give exactly one"),
            (["--ca-address", "a:1", "--ca-token-file", "t"], "--ca-address needs --ca-roots"),
            (["--ca-address", "a:1", "--ca-roots", "r"], "and --ca-token-file"),
            (["--ca-dir", "d", "--ca-token-file", "t"], "go with --ca-address"),
        ] {
            #expect {
                _ = try CertificateOptions.parse(arguments)
            } throws: { error in
                CertificateOptions.message(for: error).contains(message)
            }
        }
    }
}
