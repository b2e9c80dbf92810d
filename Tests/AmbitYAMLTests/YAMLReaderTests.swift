import Testing

@testable public import AmbitYAML

@Suite struct YAMLReaderTests {
    /// Documents come one at a time, with their nodes' lines, styles and (for an empty one) null.
    @Test func readsEveryDocumentWithLines() throws {
        let reader = try YAMLReader(yaml: "a: 1\nlist:\n  - x\n  - 'y'\n---\n---\nb: {c: \"z\"}\n")
        let first = try #require(try reader.nextDocument())
        let pairs = try #require(first.mapping).pairs
        #expect(pairs.map { $0.key.scalarString } == ["a", "list"])
        #expect(pairs[0].value.int == 1)
        #expect(pairs[1].value.mark == YAMLMark(line: 3, column: 3))
        let items = try #require(pairs[1].value.sequence)
        #expect(items.map { $0.scalar?.string } == ["x", "y"])
        #expect(items.map { $0.scalar?.style } == [.plain, .singleQuoted])
        #expect(items[1].mark?.line == 4)
        let empty = try #require(try reader.nextDocument())
        #expect(empty.isNull)
        let third = try #require(try reader.nextDocument())
        #expect(third.mark?.line == 7)
        #expect(third.mapping?.pairs.first?.value.mapping?.pairs.first?.value.scalar?.style == .doubleQuoted)
        #expect(try reader.nextDocument() == nil)
        #expect(try reader.nextDocument() == nil, "the end stays the end")
    }

    /// An alias stands for its anchor's node; a mapping's anchor covers the whole mapping.
    @Test func aliasesAreExpanded() throws {
        let yaml = "base: &b {x: 1, y: [2, 3]}\nuse: *b\nname: &n web\nagain: *n\n"
        let root = try #require(try YAMLReader.singleDocument(yaml: yaml))
        let pairs = try #require(root.mapping).pairs
        #expect(pairs[1].value.mapping?.pairs.map { $0.key.scalarString } == ["x", "y"])
        #expect(pairs[3].value.scalarString == "web")
        // Expanded, the document holds 21 nodes: the root; base and its mapping (7 nodes); use and the
        // same 7; name and web; again and web. A limit of 21 reads it, 20 refuses it.
        #expect(try YAMLReader(yaml: yaml, expansionLimit: 21).nextDocument() != nil)
        do {
            _ = try YAMLReader(yaml: yaml, expansionLimit: 20).nextDocument()
            Issue.record("a document of 21 nodes was read under a limit of 20")
        } catch {
            #expect(error.description == "expands to more than 20 YAML nodes (nested aliases?)")
        }
    }

    /// Nested aliases ("billion laughs") are counted as they are read, never expanded: ten lines that
    /// would expand to over 10¹⁰ nodes are refused once the count passes the limit.
    @Test func nestedAliasesAreCountedCheaply() throws {
        var yaml = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        var previous = "a"
        for level in 1...9 {
            let name = "l\(level)"
            yaml += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 10).joined(separator: ", ") + "]\n"
            previous = name
        }
        do {
            _ = try YAMLReader.singleDocument(yaml: yaml)
            Issue.record("an alias bomb was read")
        } catch {
            #expect(error.description == "expands to more than 200000 YAML nodes (nested aliases?)")
        }
    }

    @Test(arguments: [
        ("a: 1\nb: 2\na: 3\n", "duplicate key \"a\" in a mapping", 3),
        ("a: *nope\n", "found undefined alias \"nope\"", 1),
        ("a: &x [*x]\n", "found undefined alias \"x\"", 1),
        ("kind: Pod\nmetadata: {name: p\n", "did not find expected ',' or '}' while parsing a flow mapping", 3),
        ("a: ok\nb: \u{07}\n", "control characters are not allowed (byte 10)", 2),
        ("a: b: c\n", "mapping values are not allowed in this context", 1),
    ])
    func refusesWithWhereAndWhy(yaml: String, problem: String, line: Int) {
        do {
            let documents = try YAMLReader.allDocuments(yaml: yaml)
            Issue.record("expected an error, read \(documents.count) documents")
        } catch {
            #expect(error.description == problem)
            #expect(error.mark?.line == line)
        }
    }

    /// Keys of different types are different keys, as in YAML: `1` and `"1"` may both appear.
    @Test func keysOfDifferentTypesDoNotClash() throws {
        let root = try #require(try YAMLReader.singleDocument(yaml: "1: a\n\"1\": b\n"))
        #expect(root.mapping?.pairs.count == 2)
    }

    /// Nesting costs heap, not stack: 1,000 levels read, one more is refused, and a hostile
    /// 200,000 levels is an error, not a crash.
    @Test func nestingIsBounded() throws {
        func nested(_ depth: Int) -> String {
            String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        }
        var node = try #require(try YAMLReader.singleDocument(yaml: nested(YAMLReader.maximumDepth)))
        var depth = 0
        while let items = node.sequence {
            depth += 1
            guard let first = items.first else { break }
            node = first
        }
        #expect(depth == YAMLReader.maximumDepth)
        for tooDeep in [YAMLReader.maximumDepth + 1, 200_000] {
            #expect(throws: YAMLError.self) { try YAMLReader.singleDocument(yaml: nested(tooDeep)) }
        }
    }

    /// Anchors that nest each other make a tree deeper than the text's nesting: 3 lines of 400
    /// levels, each holding the previous line's anchor, would be 1,200 deep (and freeing such a tree
    /// recursively, with enough lines, would exhaust the stack). Two lines (800) are fine.
    @Test func nestingIsCountedThroughAliases() throws {
        func chain(_ lines: Int) -> String {
            (1...lines).map { line in
                let inner = line == 1 ? "x" : "*a\(line - 1)"
                return "- &a\(line) " + String(repeating: "[", count: 400) + inner + String(repeating: "]", count: 400)
            }.joined(separator: "\n") + "\n"
        }
        #expect(try YAMLReader.singleDocument(yaml: chain(2)) != nil)
        do {
            _ = try YAMLReader.singleDocument(yaml: chain(3))
            Issue.record("a tree 1,200 deep through aliases was read")
        } catch {
            #expect(error.description == "nested deeper than 1000 levels (through aliases)")
            #expect(error.mark?.line == 3)
        }
    }

    /// Messages that carry no line of their own get it from ``YAMLError/located``.
    @Test func errorsCanSayWhere() {
        #expect(throws: YAMLError.self) { try YAMLReader.singleDocument(yaml: "a: 1\n---\nb: 2\n") }
        do {
            _ = try YAMLReader.singleDocument(yaml: "a: 1\n---\nb: 2\n")
        } catch {
            #expect(error.located == "line 3, column 1: expected a single document, found another")
        }
    }

    /// A merge key adds the entries its mapping does not have, for loose readers (kubeconfig).
    @Test func mergeKeysMergeInValues() throws {
        let yaml = "base: &b {server: s1, user: u1}\nother: &o {user: u2, ca: c2}\nctx:\n  <<: [*b, *o]\n  user: mine\n"
        let root = try #require(try YAMLReader.singleDocument(yaml: yaml))
        let context = try #require((root.value as? [String: Any])?["ctx"] as? [String: Any])
        #expect(context["user"] as? String == "mine")
        #expect(context["server"] as? String == "s1")
        #expect(context["ca"] as? String == "c2")
        #expect(context["<<"] == nil)
    }

    @Test func aSingleDocumentIsRequiredWhereOneIsExpected() throws {
        #expect(throws: YAMLError.self) { try YAMLReader.singleDocument(yaml: "a: 1\n---\nb: 2\n") }
        #expect(try YAMLReader.singleDocument(yaml: "") == nil)
        #expect(try YAMLReader.singleDocument(yaml: "# only a comment\n") == nil)
    }

    /// ``YAMLNode/value`` gives loosely shaped files (kubeconfig) Swift values by their YAML types.
    @Test func valuesForLooseReaders() throws {
        let root = try #require(
            try YAMLReader.singleDocument(yaml: "s: x\ni: 3\nb: true\nf: 1.5\nn: ~\nl: [a, 1]\nq: '3'\n")
        )
        let value = try #require(root.value as? [String: Any])
        #expect(value["s"] as? String == "x")
        #expect(value["i"] as? Int == 3)
        #expect(value["b"] as? Bool == true)
        #expect(value["f"] as? Double == 1.5)
        #expect(value["n"] is YAMLNull)
        #expect((value["l"] as? [Any])?.count == 2)
        #expect(value["q"] as? String == "3")
    }
}

/// Only for `== nil` in expectations.
extension YAMLNode: Equatable {
    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case (.scalar(let a), .scalar(let b)): return a.string == b.string && a.style == b.style && a.tag == b.tag
        case (.mapping(let a), .mapping(let b)):
            return a.pairs.count == b.pairs.count
                && zip(a.pairs, b.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.sequence(let a), .sequence(let b)): return a.items == b.items
        default: return false
        }
    }
}
