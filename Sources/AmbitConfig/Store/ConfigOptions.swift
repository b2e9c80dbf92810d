public import AmbitModel

/// Mesh-wide settings that shape how objects are interpreted. Immutable; defaults match Istio.
public struct ConfigOptions: Hashable, Sendable {
    /// Trust domain of SPIFFE identities, `cluster.local` by default.
    public var trustDomain: String
    /// Namespace whose selector-less policies apply mesh-wide, `istio-system` by default.
    public var rootNamespace: String
    /// DNS suffix of service host names, `cluster.local` by default.
    public var clusterDomain: String
    /// The cluster's name in telemetry (`source_cluster`, `destination_cluster`); Istio's default.
    public var clusterID: String

    /// Istio's default `CLUSTER_ID`.
    public static let defaultClusterID = "Kubernetes"

    public init(
        trustDomain: String = SpiffeID.defaultTrustDomain,
        rootNamespace: String = WellKnownLabels.defaultRootNamespace,
        clusterDomain: String = "cluster.local",
        clusterID: String = ConfigOptions.defaultClusterID
    ) {
        self.trustDomain = trustDomain
        self.rootNamespace = rootNamespace
        self.clusterDomain = clusterDomain
        self.clusterID = clusterID
    }
}
