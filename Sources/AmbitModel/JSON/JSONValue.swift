/// A JSON document kept faithful to its text: strings stay strings (`"8080"` is not a port), numbers
/// keep the digits they were written with, `true` is a boolean. The Kubernetes API's objects are read
/// through it, and the CNI plugin passes the previous plugin's result through it untouched, without
/// Foundation (whose `JSONSerialization` would bring ICU into the plugin that runs on every node).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number as JSON wrote it (the text must be a JSON number: it is written out unchanged).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    public var stringValue: String? {
        guard case .string(let text) = self else { return nil }
        return text
    }

    public var arrayValue: [JSONValue]? {
        guard case .array(let items) = self else { return nil }
        return items
    }

    public var objectValue: [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        return members
    }

    /// A number's value (`nil` for anything else, or digits a `Double` cannot hold).
    public var doubleValue: Double? {
        guard case .number(let text) = self else { return nil }
        return Double(text)
    }

    /// A copy with `key` set (objects only).
    public func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        members[key] = value
        return .object(members)
    }

    /// Parses one JSON text (RFC 8259). Strings must be valid UTF-8, and nesting is limited so that
    /// hostile input cannot exhaust the stack. Member names must be unique unless
    /// `lastDuplicateWins` (then a later member replaces an earlier one of the same name, as Go's
    /// `encoding/json` reads files other programs wrote).
    public static func parse(
        _ bytes: some Collection<UInt8>,
        lastDuplicateWins: Bool = false
    ) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(Array(bytes), duplicatesAllowed: lastDuplicateWins)
        return try parser.parseDocument()
    }

    // MARK: Writing

    /// The document as JSON text: members sorted by name, `/` not escaped, numbers as written.
    /// `indented` puts one member or item per line, two spaces per level, as people edit
    /// configuration files.
    public func serialized(indented: Bool = false) -> String {
        var out: [UInt8] = []
        write(to: &out, indentation: indented ? 0 : nil)
        return String(decoding: out, as: UTF8.self)
    }

    private func write(to out: inout [UInt8], indentation level: Int?) {
        func newline(_ out: inout [UInt8], _ level: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let text): Self.appendQuoted(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (position, item) in items.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                if let level { newline(&out, level + 1) }
                item.write(to: &out, indentation: level.map { $0 + 1 })
            }
            if let level, !items.isEmpty { newline(&out, level) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (position, key) in members.keys.sorted().enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                if let level { newline(&out, level + 1) }
                Self.appendQuoted(key, to: &out)
                out.append(UInt8(ascii: ":"))
                if level != nil { out.append(UInt8(ascii: " ")) }
                members[key]!.write(to: &out, indentation: level.map { $0 + 1 })
            }
            if let level, !members.isEmpty { newline(&out, level) }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string literal (RFC 8259 escaping: `"`, `\` and control characters); UTF-8 beyond
    /// ASCII passes through unchanged.
    public static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        func hexDigit(_ value: UInt8) -> UInt8 {
            value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
        }
        out.append(UInt8(ascii: "\""))
        // Most text needs no escape: copied whole when it is stored contiguously (native strings are).
        let copied = text.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
            else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true {
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0xF))
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }

    /// A later duplicate key replaces an earlier one.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
}
