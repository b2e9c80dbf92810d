import AmbitModel
import Testing

@testable import AmbitCapture

/// The ruleset as data: structure and invariants, without installing it.
@Suite struct InPodRulesModelTests {
    @Test func chainsHaveTheHooksPrioritiesAndRuleCountsOfTheProtocol() {
        let table = InPodRules.table
        #expect(table.name == "ambit")
        #expect(table.chains.map(\.name) == ["prerouting_mangle", "output_route", "prerouting_nat", "output_nat"])
        #expect(table.chains.map(\.kind) == [.filter, .route, .nat, .nat])
        #expect(table.chains.map(\.hook) == [.prerouting, .output, .prerouting, .output])
        #expect(table.chains.map(\.priority) == [-150, -150, -100, -100])
        #expect(table.chains.map(\.rules.count) == [1, 1, 8, 5])
    }

    @Test func everyAddressMatchIsGuardedByItsFamily() {
        for rule in InPodRules.table.rules {
            for (index, expression) in rule.expressions.enumerated() {
                guard case .payload(.network, _, let length) = expression else { continue }
                let guardValue: UInt8 = length == 4 ? 2 : 10
                #expect(index >= 2, "\(rule.text)")
                #expect(rule.expressions[index - 2] == .metaLoad(.nfproto), "\(rule.text)")
                #expect(rule.expressions[index - 1] == .compare(.equal, [guardValue]), "\(rule.text)")
            }
        }
    }

    @Test func redirectsGoToTheMeshPortsAndSkipAgentTraffic() {
        let table = InPodRules.table
        func redirects(_ chain: String) -> [UInt16] {
            table.chains.first { $0.name == chain }!.rules.compactMap { rule in
                guard case .redirect(let port) = rule.expressions.last else { return nil }
                #expect(rule.text.contains("meta mark & 0x00000fff != 0x00000539"))
                return port
            }
        }
        #expect(redirects("prerouting_nat") == [15006, 15006])
        #expect(redirects("output_nat") == [15001, 15001])
        #expect(InPodRules.ruleDescription.contains("\t\ttcp dport 15008 accept\n"))
    }
}
