/// An Istio `PeerAuthentication`: whether plaintext (non-HBONE) inbound traffic is accepted.
public struct PeerAuthentication: KubernetesObject {
    public static let kind = ResourceKind.peerAuthentication

    public enum Mode: String, Hashable, Sendable, CaseIterable {
        /// Inherit from the parent scope (namespace, then root namespace); PERMISSIVE at the top.
        case unset = "UNSET"
        case disable = "DISABLE"
        case permissive = "PERMISSIVE"
        case strict = "STRICT"
    }

    public var metadata: ObjectMeta
    public var selector: LabelSelector?
    /// `spec.mtls.mode`.
    public var mode: Mode
    /// `spec.portLevelMtls`: per target port, only meaningful with a selector.
    public var portLevelModes: [UInt16: Mode]

    public init(
        metadata: ObjectMeta,
        selector: LabelSelector? = nil,
        mode: Mode = .unset,
        portLevelModes: [UInt16: Mode] = [:]
    ) {
        self.metadata = metadata
        self.selector = selector
        self.mode = mode
        self.portLevelModes = portLevelModes
    }
}
