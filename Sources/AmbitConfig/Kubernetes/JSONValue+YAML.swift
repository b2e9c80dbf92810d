import AmbitModel
import AmbitYAML

extension JSONValue {
    /// The same document as a YAML node, for ``ManifestDecoder``, each scalar tagged with its JSON
    /// type. Mapping keys are sorted so that errors are reported in a stable order.
    var yamlNode: YAMLNode {
        switch self {
        case .null: return .scalar(.init("null", tag: .null))
        case .bool(let value): return .scalar(.init(value ? "true" : "false", tag: .bool))
        case .number(let text):
            let integer = !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
            return .scalar(.init(text, tag: integer ? .int : .float))
        case .string(let text): return .scalar(.init(text, tag: .str, style: .doubleQuoted))
        case .array(let items): return .sequence(.init(items.map(\.yamlNode)))
        case .object(let members):
            return .mapping(
                .init(members.keys.sorted().map { (key: .scalar(.init($0, tag: .str)), value: members[$0]!.yamlNode) })
            )
        }
    }
}
