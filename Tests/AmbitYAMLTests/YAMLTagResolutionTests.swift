import Testing

@testable import AmbitYAML

/// Plain scalars get their type by YAML 1.1's rules, the ones Kubernetes reads manifests with (and
/// the rules the previous reader, Yams, applied): each row is a scalar and the type it must read as.
@Suite struct YAMLTagResolutionTests {
    @Test(arguments: [
        // Booleans: three casings of six words, nothing else.
        ("yes", YAMLTag.bool), ("No", .bool), ("ON", .bool), ("off", .bool), ("true", .bool), ("FALSE", .bool),
        ("yES", .str), ("y", .str), ("tru", .str),
        // Integers: decimal, binary, octal (0 and 0o), hexadecimal, sexagesimal, underscores.
        ("0", .int), ("-0", .int), ("+12", .int), ("1_000", .int), ("0b1010", .int), ("0x1F", .int),
        ("-0x_f", .int), ("0o17", .int), ("017", .int), ("0_", .int), ("1:30", .int), ("190:20:30", .int),
        ("-1:30", .int), ("0x", .str), ("0b", .str), ("0b2", .str), ("0o", .str), ("1:60", .str), ("1:", .str),
        // Floats, including the forms only YAML 1.1 has.
        ("1.5", .float), ("-1.5", .float), ("1e3", .float), ("1.", .float), (".5", .float), ("._", .float),
        ("1.5e-3", .float), (".5e+3", .float), (".inf", .float), ("-.Inf", .float), ("+.INF", .float),
        (".nan", .float), (".NaN", .float), ("190:20:30.15", .float), ("09", .float), ("1e", .str),
        ("+.5", .str), ("-.nan", .str), (".5e3", .str), ("1.2.3", .str),
        // Null: nothing at all, ~ and three casings of null.
        ("", .null), ("~", .null), ("null", .null), ("Null", .null), ("NULL", .null), ("nULL", .str),
        // Timestamps: a date, or a date and time with an optional fraction and zone.
        ("2001-12-14", .timestamp), ("2001-12-14t21:59:43.10-05:00", .timestamp),
        ("2001-12-14 21:59:43.10 -5", .timestamp), ("2001-12-15T02:59:43.1Z", .timestamp),
        ("2001-1-1T1:00:00", .timestamp), ("2001-12-1", .str), ("2001-12-14T21:59", .str),
        // Merge and value keys.
        ("<<", .merge), ("=", .value),
        // Strings that look close.
        ("hello", .str), ("8080/TCP", .str), ("v1", .str), ("-", .str), ("10.0.0.1", .str), ("1_000x", .str),
    ])
    func plainScalarsResolve(text: String, expected: YAMLTag) {
        #expect(YAMLTag.resolve(plain: text) == expected, "\"\(text)\"")
    }

    /// A quoted or block scalar is a string whatever it says; an explicit tag wins over the text.
    @Test func quotingAndTagsDecide() throws {
        let root = try #require(
            try YAMLReader.singleDocument(yaml: "a: '8080'\nb: \"yes\"\nc: |\n  true\nd: !!str 1\ne: 1\n")
        )
        let values = root.mapping!.pairs.map { ($0.key.scalarString!, $0.value.resolvedTag) }
        #expect(values.map(\.0) == ["a", "b", "c", "d", "e"])
        #expect(values.map(\.1) == [.str, .str, .str, .str, .int])
    }

    @Test(arguments: [
        ("8080", 8080), ("-12", -12), ("0x1F", 31), ("0o17", 15), ("-017", -15), ("0b101", 5), ("1_000", 1000),
        ("1:30", 90), ("190:20:30", 685_230), ("0", 0),
    ])
    func integersHaveTheirValues(text: String, value: Int) {
        #expect(YAMLNode.scalar(.init(text)).int == value)
    }

    @Test func valuesOfOtherTypes() {
        #expect(YAMLNode.scalar(.init("On")).bool == true)
        #expect(YAMLNode.scalar(.init("no")).bool == false)
        #expect(YAMLNode.scalar(.init("\"yes\"")).bool == nil)
        #expect(YAMLNode.scalar(.init("yes", style: .doubleQuoted)).bool == nil)
        #expect(YAMLNode.scalar(.init("-.inf")).double == -.infinity)
        #expect(YAMLNode.scalar(.init("1_0.5")).double == 10.5)
        #expect(YAMLNode.scalar(.init("99999999999999999999")).int == nil)
        // Sexagesimal digits that overflow in the last addition are not a number, not a trap.
        #expect(YAMLNode.scalar(.init("153722867280912930:59")).int == nil)
        #expect(YAMLNode.scalar(.init("~")).isNull)
        #expect(!YAMLNode.scalar(.init("~", style: .singleQuoted)).isNull)
    }
}
