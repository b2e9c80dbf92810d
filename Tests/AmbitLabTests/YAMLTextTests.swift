import AmbitModel
import AmbitYAML
import Testing

@testable import AmbitLab

/// The lab writes its manifests as YAML from JSON documents; what it writes must read back as the
/// same document, strings that look like other types included.
@Suite struct YAMLTextTests {
    @Test func documentsReadBackAsWritten() throws {
        let tricky = [
            "yes", "8080", "", "a: b", "#x", "-", "two\nlines", "null", " lead", "trail ", "key:", "10.0.0.1",
            "plain", "istio.io/dataplane-mode", "quote\"d", "tab\there", "1.5", "~", "*alias", "é",
            // What YAML does not take printed, or reads as a line break, must be escaped.
            "del\u{7f}", "nel\u{85}", "c1\u{9f}", "ls\u{2028}", "bom\u{feff}", "bell\u{07}", "back\\slash",
            "\u{fffe}", "😀",
        ]
        let document = JSONValue.object([
            "apiVersion": .string("v1"),
            "kind": .string("Pod"),
            "metadata": .object([
                "name": .string("web-1"),
                "labels": .object(
                    Dictionary(uniqueKeysWithValues: tricky.enumerated().map { ("k\($0.offset)", .string($0.element)) })
                ),
            ]),
            "spec": .object([
                "ports": .array([.object(["port": .number("80"), "name": .string("http")]), .object([:])]),
                "list": .array([.string("yes"), .array([.string("x")]), .array([]), .bool(false), .null]),
                "empty": .object([:]),
            ]),
        ])
        let text = YAMLText.document(document)
        let root = try #require(try YAMLReader.singleDocument(yaml: text), "\(text)")
        #expect(json(root) == document, "\(text)")
        #expect(text.hasPrefix("apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n"), "\(text)")
        #expect(text.contains("\n  name: web-1\n"), "\(text)")
        #expect(text.contains("  ports:\n  - name: http\n    port: 80\n  - {}\n"), "\(text)")
    }

    /// The document a YAML tree holds, typed as YAML types it, for comparison.
    private func json(_ node: YAMLNode) -> JSONValue {
        switch node {
        case .mapping(let mapping):
            return .object(
                Dictionary(uniqueKeysWithValues: mapping.pairs.map { ($0.key.scalarString ?? "?", json($0.value)) })
            )
        case .sequence(let sequence): return .array(sequence.items.map(json))
        case .scalar(let scalar):
            switch scalar.resolvedTag {
            case .null: return .null
            case .bool: return .bool(node.bool!)
            case .int, .float: return .number(scalar.string)
            default: return .string(scalar.string)
            }
        }
    }
}
