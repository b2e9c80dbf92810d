/// A `paths` value of an AuthorizationPolicy operation: Istio's string match (`/api/*` prefix,
/// `*.json` suffix, `*` any, exact otherwise), or a path template with `{*}` (exactly one path
/// segment) and `{**}` (one or more segments, only as the last segment), e.g. `/users/{*}/orders`.
/// Matching is against the request path without its query string.
public enum PathPattern: Hashable, Sendable, CustomStringConvertible {
    case string(StringMatch)
    case template([Segment])

    public enum Segment: Hashable, Sendable {
        case literal(String)
        case one
        case rest
    }

    public init(parsing text: String) throws {
        guard text.contains("{") || text.contains("}") else {
            self = .string(try StringMatch(parsing: text))
            return
        }
        guard text.hasPrefix("/") else {
            throw PathPatternError(text: text, problem: "a path template must start with '/'")
        }
        let parts = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Segment] = []
        for (index, part) in parts.enumerated() {
            switch part {
            case "{*}":
                segments.append(.one)
            case "{**}":
                guard index == parts.count - 1 else {
                    throw PathPatternError(text: text, problem: "{**} is only allowed as the last segment")
                }
                segments.append(.rest)
            default:
                guard !part.contains("{"), !part.contains("}"), !part.contains("*") else {
                    throw PathPatternError(
                        text: text,
                        problem: "\"\(part)\": a segment is either {*}, {**} or literal text without '*', '{' or '}'"
                    )
                }
                segments.append(.literal(String(part)))
            }
        }
        self = .template(segments)
    }

    public func matches(_ path: String) -> Bool {
        switch self {
        case .string(let match):
            return match.matches(path)
        case .template(let segments):
            guard path.hasPrefix("/") else { return false }
            let parts = path.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            var index = 0
            for segment in segments {
                switch segment {
                case .rest:
                    // One or more segments, none of them empty.
                    let rest = parts[(parts.startIndex + index)...]
                    return !rest.isEmpty && rest.allSatisfy { !$0.isEmpty }
                case .one:
                    guard index < parts.count, !parts[parts.startIndex + index].isEmpty else { return false }
                case .literal(let literal):
                    guard index < parts.count, String(Substring(parts[parts.startIndex + index])) == literal else {
                        return false
                    }
                }
                index += 1
            }
            return index == parts.count
        }
    }

    public var description: String {
        switch self {
        case .string(let match):
            return match.description
        case .template(let segments):
            return "/"
                + segments.map { segment in
                    switch segment {
                    case .literal(let text): return text
                    case .one: return "{*}"
                    case .rest: return "{**}"
                    }
                }.joined(separator: "/")
        }
    }
}

/// A `paths` value that is neither a string match nor a valid template.
public struct PathPatternError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public let problem: String
    public var description: String { "path \"\(text)\": \(problem)" }
}
