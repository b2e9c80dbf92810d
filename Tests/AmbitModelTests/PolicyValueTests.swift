import AmbitModel
import Testing

@Suite struct StringMatchTests {
    @Test(arguments: [
        ("abc", "abc", true), ("abc", "abcd", false),
        ("abc*", "abcd", true), ("abc*", "xabc", false),
        ("*abc", "xabc", true), ("*abc", "abcx", false),
        ("*", "anything", true), ("*", "", false),
    ])
    func matches(pattern: String, value: String, expected: Bool) throws {
        #expect(try StringMatch(parsing: pattern).matches(value) == expected)
    }

    @Test func keepsNotation() throws {
        for text in ["a", "a*", "*a", "*"] {
            #expect(try StringMatch(parsing: text).description == text)
        }
    }

    @Test(arguments: ["a*b", "*a*", "**"])
    func rejectsInnerWildcard(text: String) {
        #expect {
            try StringMatch(parsing: text)
        } throws: { error in
            (error as? StringMatchError)?.description
                == "\"\(text)\": '*' is only allowed at the start or the end (or alone)"
        }
    }
}

@Suite struct ConditionKeyTests {
    @Test func parsesKnownKeys() throws {
        #expect(try ConditionKey(parsing: "source.ip") == .sourceIP)
        #expect(try ConditionKey(parsing: "destination.port") == .destinationPort)
        #expect(try ConditionKey(parsing: "request.headers[X-User]") == .requestHeader("x-user"))
        #expect(try ConditionKey(parsing: "request.auth.claims[iss]") == .requestAuthClaims("iss"))
        #expect(try ConditionKey(parsing: "source.principal").isL4)
        #expect(try !ConditionKey(parsing: "remote.ip").isL4)
        #expect(try !ConditionKey(parsing: "request.headers[x]").isL4)
    }

    @Test(arguments: ["source.port", "request.headers[]", "request.headers", "destination.ipaddress", ""])
    func rejectsUnknown(key: String) {
        #expect {
            try ConditionKey(parsing: key)
        } throws: { error in
            (error as? ConditionKeyError)?.key == key
        }
    }
}

@Suite struct GatewayDurationTests {
    @Test(arguments: [
        ("1h", Duration.seconds(3600)), ("500ms", .milliseconds(500)), ("1m30s", .seconds(90)),
        ("1h2m3s4ms", .seconds(3723) + .milliseconds(4)), ("0s", .zero), ("99999s", .seconds(99999)),
    ])
    func parses(text: String, expected: Duration) throws {
        #expect(try GatewayDuration(parsing: text).duration == expected)
    }

    @Test(arguments: ["", "10", "s", "1d", "1.5s", "100000s", "1h1h1h1h1h", "-1s", "1 s", "10sec"])
    func rejects(text: String) {
        #expect {
            try GatewayDuration(parsing: text)
        } throws: { error in
            (error as? GatewayDurationError)?.text == text
        }
    }
}
