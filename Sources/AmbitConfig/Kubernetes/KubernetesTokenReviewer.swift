import AmbitModel
import FoundationEssentials
public import NIOCore

/// What the API server says about a bearer token (`authentication.k8s.io/v1` TokenReview).
public struct TokenReviewResult: Sendable, Hashable {
    /// `system:serviceaccount:<namespace>:<name>` for a service account's token.
    public var username: String
    /// `status.user.groups`: a service account's token carries `system:serviceaccounts`.
    public var groups: [String] = []
    /// `status.audiences`: those of the requested audiences the token is valid for.
    public var audiences: [String] = []
    /// `authentication.kubernetes.io/node-name` and `pod-name` of a pod-bound token, when the server adds them.
    public var nodeName: String?
    public var podName: String?
}

/// Why a token was not accepted: the API server refused it (`rejected`), or could not be asked.
public enum TokenReviewError: Error, Sendable, Hashable, CustomStringConvertible {
    case rejected(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .rejected(let why): return why
        case .unavailable(let why): return "the API server could not review the token: \(why)"
        }
    }
}

/// Asks the Kubernetes API server whether a bearer token is valid for the given audiences (TokenReview), as
/// istiod authenticates ztunnel. The reviewer's own credentials need `create` on `tokenreviews`.
public final class KubernetesTokenReviewer: Sendable {
    private let client: KubernetesAPIClient

    public init(cluster: KubernetesClusterConfig, group: any EventLoopGroup, userAgent: String) throws {
        client = try KubernetesAPIClient(config: cluster, group: group, userAgent: userAgent)
    }

    public func review(token: String, audiences: [String]) async throws(TokenReviewError) -> TokenReviewResult {
        let spec: [String: Any] = ["token": token, "audiences": audiences]
        let request: [String: Any] = [
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec,
        ]
        let body: ByteBuffer
        do {
            body = try await client.postJSON(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                JSONValue(request).serialized()
            )
        } catch KubernetesAPIError.status(let code, let reason, let message) where code == 400 || code == 422 {
            // The server would not even review it (an empty or malformed token): the token is at fault.
            throw .rejected("the API server refused to review the token: HTTP \(code) \(reason) \(message ?? "")")
        } catch {
            throw .unavailable("\(error)")
        }
        return try Self.result(of: Array(body.readableBytesView))
    }

    /// Reads a TokenReview answer.
    static func result(of bytes: [UInt8]) throws(TokenReviewError) -> TokenReviewResult {
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            throw .unavailable("the TokenReview answer is not JSON: \(error)")
        }
        guard let status = document["status"] else { throw .unavailable("the TokenReview answer has no status") }
        guard case .bool(true) = status["authenticated"] else {
            throw .rejected(status["error"]?.stringValue.map { "token rejected: \($0)" } ?? "token not authenticated")
        }
        guard let username = status["user"]?["username"]?.stringValue else {
            throw .unavailable("the TokenReview answer names no user")
        }
        let extra = status["user"]?["extra"]
        var result = TokenReviewResult(
            username: username,
            nodeName: extra?["authentication.kubernetes.io/node-name"]?.arrayValue?.first?.stringValue,
            podName: extra?["authentication.kubernetes.io/pod-name"]?.arrayValue?.first?.stringValue
        )
        result.groups = status["user"]?["groups"]?.arrayValue?.compactMap(\.stringValue) ?? []
        result.audiences = status["audiences"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return result
    }
}
