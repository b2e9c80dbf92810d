/// Labels and annotations with a meaning in Istio ambient, spelled exactly as Istio spells them.
public enum WellKnownLabels {
    /// On a Namespace or Pod: `ambient` enrolls, `none` (on a pod) opts out.
    public static let dataplaneMode = "istio.io/dataplane-mode"
    public static let dataplaneModeAmbient = "ambient"
    public static let dataplaneModeNone = "none"

    /// On a Namespace, Service or Pod: the name of the waypoint Gateway to use, or `none`.
    public static let useWaypoint = "istio.io/use-waypoint"
    /// Namespace of the Gateway named by `istio.io/use-waypoint` when it is not the object's own.
    public static let useWaypointNamespace = "istio.io/use-waypoint-namespace"
    public static let useWaypointNone = "none"

    /// On a waypoint Gateway: which traffic it handles (`service`, `workload`, `all`, `none`).
    public static let waypointFor = "istio.io/waypoint-for"

    /// The root namespace whose selector-less policies apply to the whole mesh.
    public static let defaultRootNamespace = "istio-system"
}
