import AmbitModel
public import Crypto
public import FoundationEssentials

/// A Kubernetes-shaped service-account token (a JWT) that Ambit's CA can verify without an API server:
/// ES256-signed with a P-256 key whose public half the CA holds (`--token-public-key`). The claims are
/// those of a pod-bound projected token (`iss`, `sub` = `system:serviceaccount:<ns>:<sa>`, `aud`, `iat`,
/// `nbf`, `exp`, and `kubernetes.io` with `namespace`, `serviceaccount`, `pod` and `node`), so the same
/// caller checks apply to both. Used by the lab and by clusters that prefer not to grant TokenReview.
public struct ServiceAccountToken: Sendable, Hashable {
    public var issuer: String
    public var audiences: [String]
    public var namespace: String
    public var serviceAccount: String
    public var podName: String?
    public var nodeName: String?
    public var issuedAt: Date
    public var expiry: Date

    /// The token's size limit; real projected tokens are about 1 KB.
    public static let maximumLength = 8192

    public init(
        issuer: String,
        audiences: [String],
        namespace: String,
        serviceAccount: String,
        podName: String? = nil,
        nodeName: String? = nil,
        issuedAt: Date,
        expiry: Date
    ) {
        self.issuer = issuer
        self.audiences = audiences
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.podName = podName
        self.nodeName = nodeName
        self.issuedAt = issuedAt
        self.expiry = expiry
    }

    public var subject: String { CACaller.username(namespace: namespace, serviceAccount: serviceAccount) }

    /// The compact JWS: base64url(header).base64url(claims).base64url(r || s).
    public func signed(with key: P256.Signing.PrivateKey) throws -> String {
        func named(_ name: String) -> JSONValue { .object(["name": .string(name)]) }
        func seconds(_ date: Date) -> JSONValue { .number(String(Int(date.timeIntervalSince1970))) }
        var kubernetes: [String: JSONValue] = [
            "namespace": .string(namespace), "serviceaccount": named(serviceAccount),
        ]
        if let podName { kubernetes["pod"] = named(podName) }
        if let nodeName { kubernetes["node"] = named(nodeName) }
        let claims = JSONValue.object([
            "iss": .string(issuer), "sub": .string(subject), "aud": .array(audiences.map(JSONValue.string)),
            "iat": seconds(issuedAt), "nbf": seconds(issuedAt), "exp": seconds(expiry),
            "kubernetes.io": .object(kubernetes),
        ])
        let header = JSONValue.object(["alg": .string("ES256"), "typ": .string("JWT")])
        let input =
            Self.base64URL(Data(header.serialized().utf8)) + "." + Self.base64URL(Data(claims.serialized().utf8))
        let signature = try key.signature(for: Data(input.utf8))
        return input + "." + Self.base64URL(signature.rawRepresentation)
    }

    /// Checks `token`'s signature against `keys`, its times against `now` (with `leeway` for clock skew),
    /// its audience against `audiences` (one must match) and its claims' shape.
    public static func verify(
        _ token: String,
        keys: [P256.Signing.PublicKey],
        audiences: [String],
        now: Date,
        leeway: TimeInterval = 60
    ) throws(CARefusal) -> ServiceAccountToken {
        guard token.utf8.count <= maximumLength else {
            throw CARefusal(.unauthenticated, "the token is longer than \(maximumLength) bytes")
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = data(base64URL: parts[0]), let claimBytes = data(base64URL: parts[1]),
            let signatureBytes = data(base64URL: parts[2])
        else {
            throw CARefusal(.unauthenticated, "the token is not a JWT (three base64url parts)")
        }
        guard let header = try? JSONValue.parse(headerBytes), header["alg"]?.stringValue == "ES256" else {
            throw CARefusal(.unauthenticated, "the token's header is not JSON with alg ES256")
        }
        let input = Data(parts[0].utf8) + Data(".".utf8) + Data(parts[1].utf8)
        guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signatureBytes),
            keys.contains(where: { $0.isValidSignature(signature, for: input) })
        else {
            throw CARefusal(.unauthenticated, "the token's signature does not verify with any trusted token key")
        }
        guard let claims = try? JSONValue.parse(claimBytes).objectValue else {
            throw CARefusal(.unauthenticated, "the token's claims are not a JSON object")
        }
        let parsed = try parse(claims)
        guard parsed.expiry.timeIntervalSince(now) > -leeway else {
            throw CARefusal(.unauthenticated, "the token expired at \(parsed.expiry)")
        }
        guard parsed.issuedAt.timeIntervalSince(now) < leeway else {
            throw CARefusal(.unauthenticated, "the token is not valid before \(parsed.issuedAt)")
        }
        guard parsed.audiences.contains(where: audiences.contains) else {
            throw CARefusal(
                .unauthenticated,
                "the token's audiences \(parsed.audiences) include none of \(audiences)"
            )
        }
        return parsed
    }

    private static func parse(_ claims: [String: JSONValue]) throws(CARefusal) -> ServiceAccountToken {
        func number(_ name: String) throws(CARefusal) -> Date {
            guard let value = claims[name]?.doubleValue else {
                throw CARefusal(.unauthenticated, "the token has no numeric \(name) claim")
            }
            return Date(timeIntervalSince1970: value)
        }
        guard let subject = claims["sub"]?.stringValue else {
            throw CARefusal(.unauthenticated, "the token has no sub claim")
        }
        guard let account = CACaller.serviceAccount(inUsername: subject) else {
            throw CARefusal(.unauthenticated, "the token's subject \"\(subject)\" is not a service account")
        }
        let audiences: [String]
        if let list = claims["aud"]?.arrayValue, list.allSatisfy({ $0.stringValue != nil }) {
            audiences = list.compactMap(\.stringValue)
        } else if let single = claims["aud"]?.stringValue {
            audiences = [single]
        } else {
            throw CARefusal(.unauthenticated, "the token has no aud claim")
        }
        let kubernetes = claims["kubernetes.io"]
        guard kubernetes?["namespace"]?.stringValue == account.namespace,
            kubernetes?["serviceaccount"]?["name"]?.stringValue == account.name
        else {
            throw CARefusal(
                .unauthenticated,
                "the token's kubernetes.io namespace and serviceaccount name must be those of its subject \(subject)"
            )
        }
        return ServiceAccountToken(
            issuer: claims["iss"]?.stringValue ?? "",
            audiences: audiences,
            namespace: account.namespace,
            serviceAccount: account.name,
            podName: kubernetes?["pod"]?["name"]?.stringValue,
            nodeName: kubernetes?["node"]?["name"]?.stringValue,
            issuedAt: try number("nbf"),
            expiry: try number("exp")
        )
    }

    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacing("+", with: "-")
            .replacing("/", with: "_")
            .replacing("=", with: "")
    }

    static func data(base64URL text: Substring) -> Data? {
        var base64 = String(text.replacing("-", with: "+").replacing("_", with: "/"))
        guard !base64.contains("=") else { return nil }
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
