import AmbitModel
import AmbitYAML
public import FoundationEssentials

/// A problem with the credentials or the address of the Kubernetes API server, worded for the operator.
public struct KubernetesConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where the Kubernetes API server is and how Ambit authenticates to it: in-cluster (the pod's
/// service-account token) or from a kubeconfig file. Only HTTPS; the server certificate is
/// always verified unless the kubeconfig says `insecure-skip-tls-verify: true`.
public struct KubernetesClusterConfig: Sendable, CustomStringConvertible {
    public enum Credentials: Sendable {
        case none
        case token(String)
        /// Re-read before every request: projected service-account tokens rotate (about hourly).
        case tokenFile(String)
        case clientCertificate(certificatePEM: [UInt8], keyPEM: [UInt8])
    }

    public var host: String
    public var port: Int
    /// The name the server certificate must carry (kubeconfig `tls-server-name`), else `host`.
    public var serverName: String?
    /// PEM roots that sign the server certificate; `nil`: the system's roots.
    public var certificateAuthorityPEM: [UInt8]?
    public var insecureSkipTLSVerify = false
    public var credentials: Credentials
    /// Where this came from, for logs: `in-cluster`, `kubeconfig /root/.kube/config (context kind)`.
    public var origin: String

    public init(
        host: String,
        port: Int,
        certificateAuthorityPEM: [UInt8]?,
        credentials: Credentials,
        origin: String
    ) {
        self.host = host
        self.port = port
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.credentials = credentials
        self.origin = origin
    }

    public var description: String { "https://\(Self.hostForURL(host)):\(port) (\(origin))" }

    /// The value of the `Host` header.
    var hostHeader: String { port == 443 ? Self.hostForURL(host) : "\(Self.hostForURL(host)):\(port)" }

    private static func hostForURL(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

    /// The `Authorization` header value, if any (reads a token file now).
    func authorization() throws(KubernetesConfigError) -> String? {
        switch credentials {
        case .none, .clientCertificate: return nil
        case .token(let token): return "Bearer \(token)"
        case .tokenFile(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubernetesConfigError("cannot read the service-account token \(path)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingWhitespace()
            guard !token.isEmpty else { throw KubernetesConfigError("the service-account token \(path) is empty") }
            return "Bearer \(token)"
        }
    }

    // MARK: In-cluster

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The pod's own credentials: `KUBERNETES_SERVICE_HOST`/`_PORT` and the mounted service-account
    /// token and CA (what every Kubernetes client does inside a pod).
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory directory: String = serviceAccountDirectory
    ) throws(KubernetesConfigError) -> KubernetesClusterConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let portText = environment["KUBERNETES_SERVICE_PORT"], !portText.isEmpty
        else {
            throw KubernetesConfigError(
                "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
                    + "(outside a cluster, pass --kubeconfig)"
            )
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw KubernetesConfigError("KUBERNETES_SERVICE_PORT=\(portText) is not a port number")
        }
        let tokenPath = "\(directory)/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubernetesConfigError(
                "no service-account token at \(tokenPath): is automountServiceAccountToken disabled for this pod?"
            )
        }
        let caPath = "\(directory)/ca.crt"
        guard let ca = FileManager.default.contents(atPath: caPath) else {
            throw KubernetesConfigError("cannot read the cluster CA \(caPath)")
        }
        return KubernetesClusterConfig(
            host: host,
            port: port,
            certificateAuthorityPEM: Array(ca),
            credentials: .tokenFile(tokenPath),
            origin: "in-cluster, service account token \(tokenPath)"
        )
    }

    // MARK: kubeconfig

    /// Reads a kubeconfig file (`kubectl`'s format): the named context, else `current-context`.
    /// Supports tokens, token files, client certificates and CA data or files; refuses `exec` and
    /// `auth-provider` plugins, which cannot run inside the agent.
    public static func kubeconfig(path: String, context requested: String? = nil) throws(KubernetesConfigError)
        -> KubernetesClusterConfig
    {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubernetesConfigError("cannot read kubeconfig \(path)")
        }
        let root: YAMLNode?
        do throws(YAMLError) {
            root = try YAMLReader.singleDocument(yaml: String(decoding: data, as: UTF8.self))
        } catch {
            throw KubernetesConfigError("kubeconfig \(path) is not valid YAML: \(error.located)")
        }
        let reader = KubeconfigReader(path: path, document: root?.value as? [String: Any] ?? [:])
        return try reader.config(context: requested)
    }
}

/// Walks a kubeconfig document; every error names the file and the entry.
private struct KubeconfigReader {
    let path: String
    let document: [String: Any]
    var directory: String { FilePaths.parent(of: path) }

    func fail(_ message: String) -> KubernetesConfigError { KubernetesConfigError("kubeconfig \(path): \(message)") }

    func named(_ list: String, _ name: String, field: String) throws(KubernetesConfigError) -> [String: Any] {
        let entries = document[list] as? [[String: Any]] ?? []
        guard let entry = entries.first(where: { $0["name"] as? String == name }) else {
            throw fail("no \(list) entry named \"\(name)\"")
        }
        guard let body = entry[field] as? [String: Any] else { throw fail("\(list) \"\(name)\" has no \(field)") }
        return body
    }

    func config(context requested: String?) throws(KubernetesConfigError) -> KubernetesClusterConfig {
        guard let contextName = requested ?? (document["current-context"] as? String), !contextName.isEmpty else {
            throw fail("no current-context; pass a context name")
        }
        let context = try named("contexts", contextName, field: "context")
        guard let clusterName = context["cluster"] as? String else {
            throw fail("context \"\(contextName)\" has no cluster")
        }
        let cluster = try named("clusters", clusterName, field: "cluster")
        guard let server = cluster["server"] as? String else { throw fail("cluster \"\(clusterName)\" has no server") }
        let (host, port) = try parseServer(server)
        var caPEM: [UInt8]?
        if let encoded = cluster["certificate-authority-data"] as? String {
            caPEM = try base64(encoded, "clusters \"\(clusterName)\" certificate-authority-data")
        } else if let file = cluster["certificate-authority"] as? String {
            caPEM = try read(file, "certificate-authority of cluster \"\(clusterName)\"")
        }
        var credentials = KubernetesClusterConfig.Credentials.none
        if let userName = context["user"] as? String, !userName.isEmpty {
            let user = try named("users", userName, field: "user")
            credentials = try self.credentials(user, name: userName)
        }
        var config = KubernetesClusterConfig(
            host: host,
            port: port,
            certificateAuthorityPEM: caPEM,
            credentials: credentials,
            origin: "kubeconfig \(path), context \(contextName)"
        )
        config.serverName = cluster["tls-server-name"] as? String
        config.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"] as? Bool ?? false
        return config
    }

    func credentials(_ user: [String: Any], name: String) throws(KubernetesConfigError)
        -> KubernetesClusterConfig.Credentials
    {
        if user["exec"] != nil || user["auth-provider"] != nil {
            throw fail(
                "user \"\(name)\" authenticates through an exec or auth-provider plugin, which Ambit does not run; "
                    + "use a token, a token file or a client certificate"
            )
        }
        if let token = user["token"] as? String, !token.isEmpty { return .token(token) }
        if let file = user["tokenFile"] as? String { return .tokenFile(resolve(file)) }
        let certificate: [UInt8]? =
            if let data = user["client-certificate-data"] as? String {
                try base64(data, "user \"\(name)\" client-certificate-data")
            } else if let file = user["client-certificate"] as? String {
                try read(file, "client-certificate of user \"\(name)\"")
            } else { nil }
        let key: [UInt8]? =
            if let data = user["client-key-data"] as? String {
                try base64(data, "user \"\(name)\" client-key-data")
            } else if let file = user["client-key"] as? String {
                try read(file, "client-key of user \"\(name)\"")
            } else { nil }
        switch (certificate, key) {
        case (let certificate?, let key?): return .clientCertificate(certificatePEM: certificate, keyPEM: key)
        case (nil, nil): return .none
        default: throw fail("user \"\(name)\" needs both a client certificate and its key")
        }
    }

    func parseServer(_ server: String) throws(KubernetesConfigError) -> (String, Int) {
        guard let url = URLComponents(string: server), let host = url.host, !host.isEmpty else {
            throw fail("server \"\(server)\" is not a URL")
        }
        guard url.scheme == "https" else {
            throw fail(
                "server \"\(server)\" is not https: Ambit sends its credentials only over TLS"
            )
        }
        guard url.path.isEmpty || url.path == "/" else {
            throw fail("server \"\(server)\": a path prefix is not supported")
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return (bare, url.port ?? 443)
    }

    func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : "\(directory)/\(file)" }

    func read(_ file: String, _ what: String) throws(KubernetesConfigError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: resolve(file)) else {
            throw fail("cannot read \(what) at \(resolve(file))")
        }
        return Array(data)
    }

    func base64(_ text: String, _ what: String) throws(KubernetesConfigError) -> [UInt8] {
        guard let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
            throw fail("\(what) is not valid base64")
        }
        return Array(data)
    }
}
