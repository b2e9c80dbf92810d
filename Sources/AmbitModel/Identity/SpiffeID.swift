/// A workload identity in the form `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
///
/// Parsing is strict: the scheme must be `spiffe`, the path must be exactly the four segments
/// `ns`, namespace, `sa`, service account, and every part must use the SPIFFE character sets.
/// Nothing is normalised silently: upper-case trust domains, trailing slashes, query strings,
/// percent-encoding and empty segments are all rejected with a ``SpiffeIDError`` saying why.
public struct SpiffeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let trustDomain: String
    public let namespace: String
    public let serviceAccount: String
    /// The form Istio authorization policies match principals against: the URI without
    /// `spiffe://`. Stored, because policy evaluation reads it on every connection.
    public let principal: String

    public static let scheme = "spiffe://"
    public static let defaultTrustDomain = "cluster.local"

    /// Builds an identity from its parts, validating each one.
    public init(trustDomain: String = SpiffeID.defaultTrustDomain, namespace: String, serviceAccount: String) throws {
        try Self.validateTrustDomain(trustDomain, in: nil)
        try Self.validateSegment(namespace, role: "namespace", in: nil)
        try Self.validateSegment(serviceAccount, role: "service account", in: nil)
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.principal = "\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)"
    }

    /// Parses `spiffe://td/ns/NS/sa/SA`.
    public init(parsing text: String) throws {
        guard text.hasPrefix(Self.scheme) else {
            throw SpiffeIDError(text, "must start with \"spiffe://\"")
        }
        let rest = text.dropFirst(Self.scheme.count)
        guard let slash = rest.firstIndex(of: "/") else {
            throw SpiffeIDError(
                text,
                "has no path; expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
            )
        }
        let trustDomain = String(rest[..<slash])
        try Self.validateTrustDomain(trustDomain, in: text)
        let segments = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 4, segments[0] == "ns", segments[2] == "sa" else {
            throw SpiffeIDError(
                text,
                "path must be exactly /ns/<namespace>/sa/<service-account>, got /\(segments.joined(separator: "/"))"
            )
        }
        try Self.validateSegment(segments[1], role: "namespace", in: text)
        try Self.validateSegment(segments[3], role: "service account", in: text)
        self.trustDomain = trustDomain
        self.namespace = String(segments[1])
        self.serviceAccount = String(segments[3])
        self.principal = String(rest)
    }

    /// The URI form, `spiffe://td/ns/NS/sa/SA`.
    public var uri: String { Self.scheme + principal }

    public var description: String { uri }

    public static func < (lhs: SpiffeID, rhs: SpiffeID) -> Bool { lhs.principal < rhs.principal }

    public static func == (lhs: SpiffeID, rhs: SpiffeID) -> Bool { lhs.principal == rhs.principal }

    public func hash(into hasher: inout Hasher) { hasher.combine(principal) }

    // SPIFFE trust domains: lower-case letters, digits, '.', '-', '_' (no upper case, no port, no userinfo).
    static func validateTrustDomain(_ domain: String, in text: String?) throws {
        guard !domain.isEmpty else {
            throw SpiffeIDError(text ?? domain, "trust domain is empty")
        }
        guard domain.utf8.count <= 255 else {
            throw SpiffeIDError(text ?? domain, "trust domain is longer than 255 bytes")
        }
        for byte in domain.utf8
        where
            !(isLowerAlnum(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_"))
        {
            throw SpiffeIDError(
                text ?? domain,
                "trust domain \"\(domain)\" contains \(describe(byte)); only a-z, 0-9, '.', '-' and '_' are allowed"
            )
        }
    }

    // SPIFFE path segments: letters, digits, '.', '-', '_'; not empty, not "." or "..".
    static func validateSegment(_ segment: Substring, role: String, in text: String?) throws {
        guard !segment.isEmpty else {
            throw SpiffeIDError(text ?? String(segment), "\(role) is empty")
        }
        guard segment != ".", segment != ".." else {
            throw SpiffeIDError(text ?? String(segment), "\(role) must not be \"\(segment)\"")
        }
        for byte in segment.utf8
        where !(isAlnum(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")) {
            throw SpiffeIDError(
                text ?? String(segment),
                "\(role) \"\(segment)\" contains \(describe(byte)); only letters, digits, '.', '-' and '_' are allowed"
            )
        }
    }

    static func validateSegment(_ segment: String, role: String, in text: String?) throws {
        try validateSegment(Substring(segment), role: role, in: text)
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isAlnum(_ byte: UInt8) -> Bool {
        isLowerAlnum(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7f {
            return "'\(Character(Unicode.Scalar(byte)))'"
        }
        return "byte 0x\(String(byte, radix: 16))"
    }
}

/// A SPIFFE ID that could not be parsed or built, with the offending text and the reason.
public struct SpiffeIDError: Error, Hashable, CustomStringConvertible {
    public let text: String
    public let reason: String

    init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }

    public var description: String { "invalid SPIFFE ID \"\(text)\": \(reason)" }
}
