import AmbitModel
import AmbitYAML

/// Writes a JSON document as block-style YAML, the way people read and edit manifests: mapping keys
/// sorted, one per line, lists as `- item`; a string stays plain only when YAML reads it back as the
/// same string, and is double-quoted otherwise, with an escape for every character YAML does not
/// take printed.
enum YAMLText {
    static func document(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: 0, into: &out)
        return out
    }

    /// `value` after a key or a dash: scalars and empty collections on the same line, the rest below.
    private static func write(_ value: JSONValue, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch value {
        case .object(let members) where !members.isEmpty:
            for key in members.keys.sorted() {
                let member = members[key]!
                out += pad + scalar(key) + ":"
                if isBlock(member) {
                    out += "\n"
                    // A list under a key is not indented further, as kubectl writes it.
                    write(member, indent: member.arrayValue == nil ? indent + 2 : indent, into: &out)
                } else {
                    out += " " + inline(member) + "\n"
                }
            }
        case .array(let items) where !items.isEmpty:
            for item in items {
                out += pad + "-"
                if isBlock(item) {
                    // The first line of a nested block goes after the dash.
                    var nested = ""
                    write(item, indent: indent + 2, into: &nested)
                    out += " " + nested.dropFirst(indent + 2)
                } else {
                    out += " " + inline(item) + "\n"
                }
            }
        default:
            out += pad + inline(value) + "\n"
        }
    }

    private static func isBlock(_ value: JSONValue) -> Bool {
        switch value {
        case .object(let members): return !members.isEmpty
        case .array(let items): return !items.isEmpty
        default: return false
        }
    }

    private static func inline(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return scalar(text)
        case .object: return "{}"
        case .array: return "[]"
        default: return value.serialized()
        }
    }

    /// A string as a plain scalar when that reads back as this string, else double-quoted.
    static func scalar(_ text: String) -> String {
        let indicators: Set<Character> = [
            "-", "?", ":", ",", "[", "]", "{", "}", "#", "&", "*", "!", "|", ">",
            "'", "\"", "%", "@", "`", " ",
        ]
        let plain =
            !text.isEmpty && YAMLTag.resolve(plain: text) == .str && !indicators.contains(text.first!)
            && !text.hasSuffix(" ") && !text.contains(": ") && !text.contains(" #") && !text.hasSuffix(":")
            && text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7f }
        return plain ? text : doubleQuoted(text)
    }

    /// YAML's double-quoted style: `\"`, `\\`, `\n`, `\t`, and `\xHH` or `\uHHHH` for what YAML
    /// does not allow printed (C0 and C1 controls, DEL, U+FEFF, U+FFFE and U+FFFF) and for what it
    /// would read as a line break (NEL, U+2028, U+2029).
    static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                let value = scalar.value
                let printable =
                    (0x20...0x7e).contains(value)
                    || (0xa0...0xd7ff).contains(value) && value != 0x2028
                        && value != 0x2029
                    || (0xe000...0xfffd).contains(value) && value != 0xfeff
                    || (0x10000...0x10ffff).contains(value)
                if printable {
                    out.unicodeScalars.append(scalar)
                } else {
                    let digits = String(value, radix: 16, uppercase: true)
                    let width = value <= 0xff ? 2 : 4
                    out +=
                        (value <= 0xff ? "\\x" : "\\u") + String(repeating: "0", count: max(0, width - digits.count))
                        + digits
                }
            }
        }
        return out + "\""
    }
}
