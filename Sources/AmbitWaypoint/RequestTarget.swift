/// The request target (`/path?query`) as the waypoint authorizes, routes and forwards it.
///
/// Paths are normalized before anything looks at them, so a policy on `/admin/*` cannot be
/// walked around with `/x/../admin/`, `//admin/` or `/%61dmin/`: percent-encoded unreserved
/// characters are decoded and other escapes upper-cased (RFC 3986 §6.2.2.1–2), dot segments are
/// removed (§5.2.4) and repeated slashes merged. Escaped slashes and backslashes (`%2F`, `%5C`)
/// stay escaped, as Istio's default (`BASE`) normalization leaves them. The query is not touched.
public enum RequestTarget {
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case notOriginForm
        case badPercentEncoding(String)

        public var description: String {
            switch self {
            case .notOriginForm: return "request target must start with \"/\""
            case .badPercentEncoding(let path): return "malformed percent-encoding in path \"\(path)\""
            }
        }
    }

    /// The path and the query (with its `?`, or empty).
    public static func split(_ target: String) -> (path: Substring, query: Substring) {
        guard let mark = target.firstIndex(of: "?") else { return (target[...], target[target.endIndex...]) }
        return (target[..<mark], target[mark...])
    }

    /// `target` with its path normalized; the same string when there is nothing to change.
    public static func normalize(_ target: String) throws(Problem) -> String {
        let (path, query) = split(target)
        guard path.utf8.first == UInt8(ascii: "/") else { throw .notOriginForm }
        guard needsWork(path.utf8) else { return target }
        let decoded = try decodeUnreserved(path)
        return removeDotSegments(decoded) + query
    }

    /// Whether the path has an escape, a dot segment or an empty segment (the common case has none).
    private static func needsWork(_ path: Substring.UTF8View) -> Bool {
        var previous: UInt8 = 0
        var beforePrevious: UInt8 = 0
        for byte in path {
            if byte == UInt8(ascii: "%") { return true }
            if byte == UInt8(ascii: "/") {
                if previous == UInt8(ascii: "/") { return true }
                if previous == UInt8(ascii: "."),
                    beforePrevious == UInt8(ascii: "/") || beforePrevious == UInt8(ascii: ".")
                {
                    return true
                }
            }
            beforePrevious = previous
            previous = byte
        }
        // A trailing "/." or "/..".
        return previous == UInt8(ascii: ".")
            && (beforePrevious == UInt8(ascii: "/") || beforePrevious == UInt8(ascii: "."))
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static let upperHex = Array("0123456789ABCDEF".utf8)

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func decodeUnreserved(_ path: Substring) throws(Problem) -> [UInt8] {
        let bytes = Array(path.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "%") else {
                out.append(byte)
                index += 1
                continue
            }
            guard index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            else { throw .badPercentEncoding(String(path)) }
            let value = high << 4 | low
            if isUnreserved(value) {
                out.append(value)
            } else {
                out.append(contentsOf: [UInt8(ascii: "%"), upperHex[Int(high)], upperHex[Int(low)]])
            }
            index += 3
        }
        return out
    }

    /// RFC 3986 §5.2.4 over segments, with empty segments (repeated slashes) dropped; a trailing
    /// slash, or a path ending in a dot segment, keeps its trailing slash.
    private static func removeDotSegments(_ path: [UInt8]) -> String {
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        for segment in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
            trailingSlash = false
            switch segment.count {
            case 0:
                trailingSlash = true
            case 1 where segment.first == UInt8(ascii: "."):
                trailingSlash = true
            case 2 where segment.allSatisfy({ $0 == UInt8(ascii: ".") }):
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = true
            default:
                segments.append(segment)
            }
        }
        var out: [UInt8] = [UInt8(ascii: "/")]
        for (offset, segment) in segments.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: segment)
        }
        if trailingSlash, !segments.isEmpty { out.append(UInt8(ascii: "/")) }
        return String(decoding: out, as: UTF8.self)
    }
}
