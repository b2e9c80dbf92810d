/// Istio's string match for principals, namespaces and other string values in policies:
/// `abc` exact, `abc*` prefix, `*abc` suffix, and `*` alone "any non-empty value".
public enum StringMatch: Hashable, Sendable, CustomStringConvertible {
    case exact(String)
    case prefix(String)
    case suffix(String)
    case presence

    /// Interprets Istio's notation. A `*` anywhere but at one end is taken literally by Istio;
    /// Ambit rejects it instead, since a literal `*` in a name or principal is never intended.
    public init(parsing text: String) throws {
        if text == "*" {
            self = .presence
        } else if text.hasPrefix("*") {
            let rest = String(text.dropFirst())
            guard !rest.contains("*") else { throw StringMatchError(text: text) }
            self = .suffix(rest)
        } else if text.hasSuffix("*") {
            let rest = String(text.dropLast())
            guard !rest.contains("*") else { throw StringMatchError(text: text) }
            self = .prefix(rest)
        } else {
            guard !text.contains("*") else { throw StringMatchError(text: text) }
            self = .exact(text)
        }
    }

    public func matches(_ value: String) -> Bool {
        switch self {
        case .exact(let exact): return value == exact
        case .prefix(let prefix): return value.hasPrefix(prefix)
        case .suffix(let suffix): return value.hasSuffix(suffix)
        case .presence: return !value.isEmpty
        }
    }

    /// The same pattern lower-cased, for case-insensitive values such as hosts.
    public var lowercased: StringMatch {
        switch self {
        case .exact(let text): return .exact(text.lowercased())
        case .prefix(let text): return .prefix(text.lowercased())
        case .suffix(let text): return .suffix(text.lowercased())
        case .presence: return .presence
        }
    }

    /// Back in Istio's notation.
    public var description: String {
        switch self {
        case .exact(let exact): return exact
        case .prefix(let prefix): return prefix + "*"
        case .suffix(let suffix): return "*" + suffix
        case .presence: return "*"
        }
    }
}

/// A match pattern with a `*` in the middle.
public struct StringMatchError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public var description: String {
        "\"\(text)\": '*' is only allowed at the start or the end (or alone)"
    }
}
