import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Foundation
import Logging
import Testing

/// Manifests a careless or hostile user writes: clashing files, an object defined twice, text that is
/// not UTF-8, aliases that expand without bound. None may remove a policy in force or exhaust the agent.
@Suite struct HostileManifestTests {
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    static func policy(_ name: String, action: String = "DENY", principal: String = "cluster.local/ns/demo/sa/client")
        -> String
    {
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: \(name), namespace: demo}
        spec:
          action: \(action)
          rules: [{from: [{source: {principals: ["\(principal)"]}}]}]
        """
    }

    static func key(_ name: String) -> ObjectKey { ObjectKey(.authorizationPolicy, namespace: "demo", name: name) }

    @Test func aClashingNewcomerNeverRemovesWhatIsInForce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write(
            "policy.yaml",
            Manifests.join([Self.policy("deny-client"), Self.policy("misc", action: "ALLOW")])
        )
        let store = ConfigStore()
        let source = ManifestDirectorySource(directory: directory.path, store: store, logger: Self.quiet)
        try source.reload()
        #expect(store.snapshot.authorizationPolicies[Self.key("deny-client")] != nil)
        // A second file, sorting first, defines `misc` too: it is the newcomer, and it is the one rejected.
        try directory.write(
            "a-extra.yaml",
            Manifests.join([Self.policy("misc", action: "ALLOW"), Self.policy("other")])
        )
        let report = try source.reload()
        #expect(store.snapshot.authorizationPolicies[Self.key("deny-client")]?.action == .deny, "the DENY stays")
        #expect(store.snapshot.authorizationPolicies[Self.key("other")] == nil, "the newcomer is rejected whole")
        #expect(
            report.errors.map(\.description) == [
                "\(directory.path)/a-extra.yaml: AuthorizationPolicy demo/misc: already defined in "
                    + "\(directory.path)/policy.yaml, which keeps it; this file is rejected (its last good state stays "
                    + "in force) until the clash is resolved"
            ]
        )
        #expect(source.problems == report.errors.map(\.description))
        // Resolved: the newcomer drops `misc` and applies.
        try directory.write("a-extra.yaml", Self.policy("other"))
        let resolved = try source.reload()
        #expect(resolved.errors.isEmpty)
        #expect(store.snapshot.authorizationPolicies[Self.key("other")] != nil)
        #expect(store.snapshot.authorizationPolicies[Self.key("deny-client")] != nil)
        #expect(source.problems.isEmpty)
    }

    @Test func anObjectMovesBetweenFilesOnceItsOldFileLetsGo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("b.yaml", Self.policy("moving"))
        let store = ConfigStore()
        let source = ManifestDirectorySource(directory: directory.path, store: store, logger: Self.quiet)
        try source.reload()
        // Moved from b.yaml to a.yaml in one edit each: never absent, whichever the poll sees first.
        try directory.write("a.yaml", Self.policy("moving", principal: "cluster.local/ns/demo/sa/other"))
        try source.reload()
        #expect(store.snapshot.authorizationPolicies[Self.key("moving")] != nil)
        try directory.write("b.yaml", "")
        try source.reload()
        try source.reload()
        let policy = try #require(store.snapshot.authorizationPolicies[Self.key("moving")])
        #expect("\(policy)".contains("sa/other"), "a.yaml's version is in force once b.yaml let go")
        #expect(source.problems.isEmpty)
    }

    @Test func anObjectDefinedTwiceInOneFileIsAnError() {
        do {
            _ = try ManifestDecoder().decode(
                Manifests.join([Self.policy("p", action: "DENY"), Self.policy("p", action: "ALLOW")]),
                file: "twice.yaml"
            )
            Issue.record("the second definition silently won")
        } catch {
            #expect(
                error.description
                    == "twice.yaml:8: AuthorizationPolicy demo/p: defined twice in this file (also in the document at line 1)",
                "\(error)"
            )
        }
    }

    @Test func textThatIsNotUTF8IsRefusedNotRepaired() throws {
        var bytes = Array(Self.policy("p").utf8)
        let at = try #require(Self.policy("p").range(of: "cluster.local")).lowerBound.utf16Offset(in: Self.policy("p"))
        // "cluster.local" is on line 6
        bytes[at] = 0xC3  // a lead byte with no continuation
        do {
            _ = try ManifestDecoder.validatedText(bytes, file: "bad.yaml")
            Issue.record("invalid UTF-8 was accepted")
        } catch {
            #expect(error.description.hasPrefix("bad.yaml:6: not valid UTF-8 (byte \(at + 1))"), "\(error)")
        }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = FileManager.default.createFile(atPath: directory.path + "/bad.yaml", contents: Data(bytes))
        let report = try ManifestDirectorySource(directory: directory.path, store: ConfigStore(), logger: Self.quiet)
            .reload()
        #expect(report.errors.first?.description.contains("not valid UTF-8") == true)
    }

    @Test func aliasesThatExpandWithoutBoundAreRefused() {
        // 60 rules of 60 sources of 60 principals: 216,000 principals from a few kilobytes.
        let principals = "[" + Array(repeating: "\"cluster.local/ns/a/sa/b\"", count: 60).joined(separator: ",") + "]"
        let sources = "[&s {source: {principals: \(principals)}}" + String(repeating: ", *s", count: 59) + "]"
        let rules = "[&r {from: \(sources)}" + String(repeating: ", *r", count: 59) + "]"
        let text = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: bomb, namespace: demo}
            spec:
              action: ALLOW
              rules: \(rules)
            """
        #expect(text.utf8.count < 4_000)
        do {
            _ = try ManifestDecoder().decode(text, file: "bomb.yaml")
            Issue.record("the alias bomb was expanded")
        } catch {
            #expect(error.description.contains("expands to more than 200000 YAML nodes"), "\(error)")
        }
    }
}
