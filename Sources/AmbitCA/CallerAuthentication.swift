public import AmbitConfig
import AmbitModel
public import Crypto
public import FoundationEssentials
import SwiftASN1

/// Who asks the CA for a certificate, as its bearer token proves.
public struct CACaller: Sendable, Hashable, CustomStringConvertible {
    public var namespace: String
    public var serviceAccount: String
    /// The node the caller's pod runs on (a pod-bound token's node claim), when the token says.
    public var nodeName: String?
    public var podName: String?

    public init(namespace: String, serviceAccount: String, nodeName: String? = nil, podName: String? = nil) {
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.nodeName = nodeName
        self.podName = podName
    }

    /// `namespace/serviceaccount`, as the trusted node accounts are written.
    public var account: String { "\(namespace)/\(serviceAccount)" }

    /// Kubernetes' user name of a service account: `system:serviceaccount:<namespace>:<name>`.
    public static func username(namespace: String, serviceAccount: String) -> String {
        "system:serviceaccount:\(namespace):\(serviceAccount)"
    }

    /// The namespace and name in a service account's user name, or `nil` for any other user name.
    public static func serviceAccount(inUsername username: String) -> (namespace: String, name: String)? {
        let fields = username.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "system", fields[1] == "serviceaccount", !fields[2].isEmpty,
            !fields[3].isEmpty
        else { return nil }
        return (String(fields[2]), String(fields[3]))
    }

    public var description: String {
        var text = Self.username(namespace: namespace, serviceAccount: serviceAccount)
        if let podName { text += " pod \(podName)" }
        if let nodeName { text += " on node \(nodeName)" }
        return text
    }
}

/// Turns a bearer token into a caller, or refuses it (`unauthenticated`; `unavailable` when it cannot tell).
public protocol CallerAuthenticator: Sendable {
    func authenticate(token: String) async throws(CARefusal) -> CACaller
}

/// Verifies ES256 tokens (``ServiceAccountToken``) with public keys the CA holds: no API server needed.
public struct LocalTokenAuthenticator: CallerAuthenticator {
    public let keys: [P256.Signing.PublicKey]
    public let audiences: [String]
    private let now: @Sendable () -> Date

    public init(keys: [P256.Signing.PublicKey], audiences: [String], now: @escaping @Sendable () -> Date = { Date() }) {
        self.keys = keys
        self.audiences = audiences
        self.now = now
    }

    /// Reads the PEM public keys in `path` (one or more `PUBLIC KEY` blocks, SubjectPublicKeyInfo).
    public static func keys(inFile path: String) throws -> [P256.Signing.PublicKey] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CARefusal(.internal, "cannot read the token key file \(path): \(error.readableDescription)")
        }
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw CARefusal(.internal, "\(path) is not valid PEM: \(error)")
        }
        var keys: [P256.Signing.PublicKey] = []
        for document in documents where document.discriminator == "PUBLIC KEY" {
            do {
                keys.append(try P256.Signing.PublicKey(derRepresentation: document.derBytes))
            } catch {
                throw CARefusal(.internal, "\(path): a PUBLIC KEY block is not a P-256 key: \(error)")
            }
        }
        guard !keys.isEmpty else {
            throw CARefusal(.internal, "\(path) holds no PEM PUBLIC KEY (a P-256 key, SubjectPublicKeyInfo)")
        }
        return keys
    }

    public func authenticate(token: String) async throws(CARefusal) -> CACaller {
        let verified = try ServiceAccountToken.verify(token, keys: keys, audiences: audiences, now: now())
        return CACaller(
            namespace: verified.namespace,
            serviceAccount: verified.serviceAccount,
            nodeName: verified.nodeName,
            podName: verified.podName
        )
    }
}

/// Asks the Kubernetes API server (TokenReview), as istiod does.
public struct TokenReviewAuthenticator: CallerAuthenticator {
    public let reviewer: KubernetesTokenReviewer
    public let audiences: [String]

    public init(reviewer: KubernetesTokenReviewer, audiences: [String]) {
        self.reviewer = reviewer
        self.audiences = audiences
    }

    public func authenticate(token: String) async throws(CARefusal) -> CACaller {
        let result: TokenReviewResult
        do {
            result = try await reviewer.review(token: token, audiences: audiences)
        } catch .rejected(let why) {
            throw CARefusal(.unauthenticated, why)
        } catch {
            throw CARefusal(.unavailable, error.description)
        }
        // As istiod: a service account's name and the service-account group, so that no other authenticator of
        // the API server (a webhook, OIDC) can pass a user off as a node agent.
        guard let account = CACaller.serviceAccount(inUsername: result.username),
            result.groups.contains("system:serviceaccounts")
        else {
            throw CARefusal(.unauthenticated, "the token belongs to \(result.username), not a service account")
        }
        // An authenticator that ignores audiences answers with none of ours: not a token for this CA.
        guard result.audiences.contains(where: audiences.contains) else {
            throw CARefusal(
                .unauthenticated,
                "the API server did not confirm the token for the audiences \(audiences) (it said \(result.audiences))"
            )
        }
        return CACaller(
            namespace: account.namespace,
            serviceAccount: account.name,
            nodeName: result.nodeName,
            podName: result.podName
        )
    }
}
