import AmbitTestSupport
import Foundation
import Testing

/// The Kubernetes manifests (`deploy/`) and what `ambitctl` generates for an installation, checked
/// by `Tests/Deploy/validate_manifests.py` (kubernetes-validate, strict, against a current release).
@Suite struct DeployManifestTests {
    static let root = TestBinaries.packageRoot.path
    static let python = ProcessInfo.processInfo.environment["AMBIT_PYTHON"] ?? "/usr/bin/python3"
    static var validator: String { root + "/Tests/Deploy/validate_manifests.py" }
    static var ambitctl: String { TestBinaries.path("ambitctl") }

    static func validate(_ arguments: [String] = [], input: String? = nil) throws -> ProcessRunner.Result {
        try ProcessRunner.run(python, [validator] + arguments, in: root, input: input)
    }

    @Test func everyManifestUnderDeployIsValid() throws {
        let result = try Self.validate()
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        #expect(result.standardOutput.contains("valid    DaemonSet ambit-system/ambit-node in deploy/daemonset.yaml"))
        #expect(result.standardOutput.contains("against Kubernetes 1.37.0"), "\(result.standardOutput)")
    }

    /// The validator's own tests: each broken manifest is refused with file, object and field.
    @Test func theValidatorRefusesBrokenManifests() throws {
        let result = try ProcessRunner.run(
            Self.python,
            ["-m", "unittest", "discover", "-s", "Tests/Deploy", "-p", "test_*.py"],
            in: Self.root
        )
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardError.contains("OK"), "\(result.standardError)")
    }

    /// deploy/waypoint/waypoint.yaml is exactly what `ambitctl waypoint generate` prints for demo/reviews.
    @Test func theWaypointTemplateIsTheGeneratorsOutput() throws {
        let generated = try ProcessRunner.run(
            Self.ambitctl,
            ["waypoint", "generate", "--namespace", "demo", "--service-account", "reviews"]
        )
        #expect(generated.status == 0, "\(generated.standardError)")
        let template = try String(contentsOfFile: Self.root + "/deploy/waypoint/waypoint.yaml", encoding: .utf8)
        #expect(generated.standardOutput == template, "regenerate deploy/waypoint/waypoint.yaml")
    }

    @Test(arguments: [
        ["--namespace", "shop", "--service-account", "checkout", "--replicas", "1"],
        ["--namespace", "shop", "--name", "shop-waypoint", "--image", "registry.example/ambit:1.0"],
    ])
    func generatedWaypointsAreValid(arguments: [String]) throws {
        let generated = try ProcessRunner.run(Self.ambitctl, ["waypoint", "generate"] + arguments)
        #expect(generated.status == 0, "\(generated.standardError)")
        let result = try Self.validate(["-"], input: generated.standardOutput)
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        #expect(result.standardOutput.contains("skipped  Gateway shop/"), "\(result.standardOutput)")
        if arguments.contains("checkout") {
            #expect(generated.standardOutput.contains("istio.io/for-service-account: checkout"))
            #expect(generated.standardOutput.contains("name: checkout-waypoint"))
        } else {
            #expect(!generated.standardOutput.contains("istio.io/for-service-account"))
            #expect(generated.standardOutput.contains("istio.io/waypoint-for: service"))
            #expect(generated.standardOutput.contains("image: registry.example/ambit:1.0"))
        }
    }

    @Test func theRootConfigMapIsValidAndHoldsOnlyTheRoot() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-ca-roots")
        defer { directory.remove() }
        let ca = directory.path + "/ca"
        #expect(try ProcessRunner.run(Self.ambitctl, ["ca", "init", "--dir", ca]).status == 0)
        let roots = try ProcessRunner.run(Self.ambitctl, ["ca", "roots", "--dir", ca, "--namespace", "demo"])
        #expect(roots.status == 0, "\(roots.standardError)")
        let result = try Self.validate(["-"], input: roots.standardOutput)
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        #expect(result.standardOutput.contains("valid    ConfigMap demo/ambit-ca-root"), "\(result.standardOutput)")
        let root = try String(contentsOfFile: "\(ca)/root-cert.pem", encoding: .utf8)
        let body = root.split(separator: "\n").filter { !$0.hasPrefix("-----") }
        #expect(body.allSatisfy { roots.standardOutput.contains("    \($0)") }, "the root's PEM, indented")
        #expect(!roots.standardOutput.contains("PRIVATE KEY"))
    }

    @Test func theCASecretIsValidAndHoldsTheCAFiles() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-ca-secret")
        defer { directory.remove() }
        let ca = directory.path + "/ca"
        #expect(try ProcessRunner.run(Self.ambitctl, ["ca", "init", "--dir", ca]).status == 0)
        let secret = try ProcessRunner.run(Self.ambitctl, ["ca", "secret", "--dir", ca, "--namespace", "demo"])
        #expect(secret.status == 0, "\(secret.standardError)")
        let result = try Self.validate(["-"], input: secret.standardOutput)
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        #expect(result.standardOutput.contains("valid    Secret demo/ambit-ca"), "\(result.standardOutput)")
        for file in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"] {
            let line = secret.standardOutput.split(separator: "\n").first { $0.hasPrefix("  \(file): ") }
            let encoded = String(line?.dropFirst(file.count + 4) ?? "")
            let contents = try Data(contentsOf: URL(fileURLWithPath: "\(ca)/\(file)"))
            #expect(Data(base64Encoded: encoded) == contents, "\(file)")
        }

        let missing = try ProcessRunner.run(Self.ambitctl, ["ca", "secret", "--dir", directory.path + "/nope"])
        #expect(missing.status != 0)
        #expect(missing.standardError.contains("nope"), "\(missing.standardError)")
        let badName = try ProcessRunner.run(Self.ambitctl, ["ca", "secret", "--dir", ca, "--namespace", "Demo_1"])
        #expect(badName.status != 0)
        #expect(badName.standardError.contains("not a valid namespace name"), "\(badName.standardError)")
    }
}
