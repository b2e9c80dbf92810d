import AmbitCapture
import AmbitModel
import Testing

@Suite(.enabled(if: isRoot, "needs root: creates network namespaces and nftables rules"))
struct InPodRulesTests {
    let executor = NetnsExecutor(threadCount: 1)

    @Test func applyInstallsExactlyTheRulesetAndPolicyRouting() async throws {
        let pod = try TestNamespace("rules")
        #expect(try await executor.run(in: pod.namespace) { try InPodRules.isApplied() } == false)

        try await executor.run(in: pod.namespace) { try InPodRules.apply() }

        #expect(normalizedRuleset(try pod.nft("list", "ruleset")) == InPodRules.ruleDescription)
        #expect(try await executor.run(in: pod.namespace) { try InPodRules.isApplied() })
        for family in ["-4", "-6"] {
            let rules = try pod.ip(family, "rule", "show")
            #expect(rules.contains("32765:\tfrom all fwmark 0x111/0xfff lookup 100"), "\(rules)")
            let routes = try pod.ip(family, "route", "show", "table", "100")
            #expect(routes.contains("local default dev lo"), "\(routes)")
        }
        // The host's own ruleset is untouched: the rules went into the pod namespace only.
        // (Other suites may hold the node's own `ambit-host` table meanwhile; only `ambit` is in-pod.)
        let host = try Command.run("nft", "list", "tables")
        #expect(!host.split(separator: "\n").contains("table inet ambit"), "\(host)")
    }

    @Test func applyingTwiceReplacesInsteadOfDuplicating() async throws {
        let pod = try TestNamespace("twice")
        try await executor.run(in: pod.namespace) { try InPodRules.apply() }
        // Someone edits the table by hand; re-applying restores exactly the intended ruleset.
        try pod.nft("add", "rule", "inet", "ambit", "output_nat", "counter")
        try await executor.run(in: pod.namespace) { try InPodRules.apply() }

        #expect(normalizedRuleset(try pod.nft("list", "ruleset")) == InPodRules.ruleDescription)
        let rules = try pod.ip("-4", "rule", "show")
        #expect(rules.components(separatedBy: "fwmark 0x111/0xfff").count == 2, "one rule, not two: \(rules)")
        let routes = try pod.ip("-6", "route", "show", "table", "100")
        #expect(routes.components(separatedBy: "local default dev lo").count == 2, "\(routes)")
    }

    @Test func removeDeletesEverythingAndIsIdempotent() async throws {
        let pod = try TestNamespace("remove")
        try await executor.run(in: pod.namespace) { try InPodRules.apply() }
        try await executor.run(in: pod.namespace) { try InPodRules.remove() }

        #expect(normalizedRuleset(try pod.nft("list", "ruleset")) == "")
        #expect(try await executor.run(in: pod.namespace) { try InPodRules.isApplied() } == false)
        for family in ["-4", "-6"] {
            #expect(!(try pod.ip(family, "rule", "show")).contains("fwmark"))
            #expect(try pod.ip(family, "route", "show", "table", "100") == "")
        }
        // Removing again, with nothing installed, is not an error.
        try await executor.run(in: pod.namespace) { try InPodRules.remove() }
    }

    @Test func kernelRejectionNamesTheObject() async throws {
        let pod = try TestNamespace("error")
        try pod.ip("link", "set", "lo", "down")
        // An IPv6 route through a device that is down is refused (IPv4 local routes are accepted);
        // the error says which route and why.
        let error = await #expect(throws: CaptureError.self) {
            try await executor.run(in: pod.namespace) { try InPodRules.apply() }
        }
        let description = error.map { "\($0)" } ?? ""
        #expect(description.contains("add route local ::/0 dev lo table 100"), "\(description)")
        #expect(description.contains("kernel says: Nexthop device is not up"), "extended ACK text: \(description)")
        #expect(error?.errno == 100, "ENETDOWN: \(description)")  // ENETDOWN
    }
}
