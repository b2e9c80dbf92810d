import Testing

@testable import AmbitHBONE

@Suite struct TraceparentTests {
    /// The rule as written in the W3C text, over characters: four dash-separated fields, "00", then
    /// 32, 16 and 2 lower-case hex digits, neither id all zero.
    static func byTheRule(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else {
            return false
        }
        let hex = parts.dropFirst().allSatisfy { part in
            part.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
        }
        return hex && parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }

    static let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test(arguments: [
        (valid, true),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", false),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", false),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g", false),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ", false),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-101", false),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u{301}", false),
        ("0\u{301}0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false),
        ("00-0af7651916cd43dd8448eb211c80319\u{663}-b7ad6b7169203331-01", false),
        ("", false),
    ])
    func fixedCases(value: String, expected: Bool) {
        #expect(HBONEHeaders.isValidTraceparent(value) == expected)
        #expect(Self.byTheRule(value) == expected)
    }

    /// The byte-level check agrees with the rule on 20,000 near misses of a valid value: one to three
    /// characters replaced, inserted or removed, from an alphabet with upper-case hex, other digits
    /// and combining marks.
    @Test func agreesWithTheRuleOnNearMisses() {
        let alphabet = Array("0123456789abcdefABCDEFg- \u{301}\u{663}é\r\n")
        var generator = SystemRandomNumberGenerator()
        var accepted = 0
        for _ in 0..<20_000 {
            var characters = Array(Self.valid)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0..<characters.count, using: &generator)
                let character = alphabet.randomElement(using: &generator)!
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: characters[at] = character
                case 1: characters.insert(character, at: at)
                default: characters.remove(at: at)
                }
            }
            let value = String(characters)
            let expected = Self.byTheRule(value)
            if expected { accepted += 1 }
            #expect(HBONEHeaders.isValidTraceparent(value) == expected, "\(value.debugDescription)")
        }
        // Replacing a hex digit with another keeps it valid: both outcomes were exercised.
        #expect(accepted > 500)
    }

    /// New ids come from a pool refilled every 512 words: across several refills every traceparent is
    /// valid and distinct, and a child keeps its parent's trace and flags.
    @Test func idsStayValidAndDistinctAcrossRefills() {
        var seen: Set<String> = []
        for _ in 0..<2_000 {
            let value = HBONEHeaders.newTraceparent()
            #expect(HBONEHeaders.isValidTraceparent(value))
            seen.insert(value)
            let child = HBONEHeaders.childTraceparent(of: Self.valid)
            #expect(child.utf8.count == 55)
            #expect(child.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") && child.hasSuffix("-01"))
            seen.insert(child)
        }
        #expect(seen.count == 4_000)
    }
}
