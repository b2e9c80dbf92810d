import AmbitCapture
import AmbitModel
import AmbitRelay
import NIOCore

/// How the agent captures a pod's traffic (`ambit-node --capture`).
public enum CaptureMode: String, Sendable, CaseIterable {
    /// In-pod nftables rules through libnftnl (the default).
    case nftables
    /// Socket-level eBPF programs through libbpf (`bpf/`).
    case ebpf
}

/// The capture in force, with what differs between the two modes for the rest of the agent.
enum CaptureBackend: Sendable {
    case nftables
    case ebpf(EBPFCapture)

    var mode: CaptureMode {
        switch self {
        case .nftables: return .nftables
        case .ebpf: return .ebpf
        }
    }

    /// `SO_MARK` of the agent's transparent dials to an application. With nftables every agent socket
    /// carries 0x539 (the rules give replies the return-path mark); with eBPF the dial itself carries 0x111,
    /// the application's socket inherits it (`tcp_fwmark_accept`) and its replies route back to the agent.
    var transparentDialMark: UInt32 {
        switch self {
        case .nftables: return MeshMarks.agentSocket
        case .ebpf: return MeshMarks.returnPath
        }
    }

    /// The original destination of a connection accepted on the inbound plaintext listener (15006): what
    /// nftables' REDIRECT recorded in conntrack, or with eBPF (`sk_lookup` assigns the socket without NAT) simply
    /// the accepted socket's own local address.
    func inboundDestination(of channel: any Channel) -> EventLoopFuture<IPEndpoint> {
        switch self {
        case .nftables:
            return OriginalDestination.read(channel)
        case .ebpf:
            guard let local = channel.localAddress.flatMap(IPEndpoint.init(socketAddress:)) else {
                return channel.eventLoop.makeFailedFuture(
                    CaptureError.invalidArgument("an accepted socket without a local IP address")
                )
            }
            return channel.eventLoop.makeSucceededFuture(local)
        }
    }

    /// Installs the pod's capture; runs on a thread inside the pod's namespace, before its listeners open.
    func prepare() throws(CaptureError) {
        switch self {
        case .nftables: try InPodRules.apply()
        case .ebpf: _ = try EBPFCapture.prepareCurrentNamespace()
        }
    }

    /// Finishes the capture once the listeners are open (inside the pod's namespace).
    func activate(netns: NetworkNamespace, addresses: [IPAddress], inboundListener: Int32) throws(CaptureError) {
        guard case .ebpf(let capture) = self else { return }
        let cookie = try EBPFCapture.currentNamespaceCookie()
        try capture.enroll(netns: netns, cookie: cookie, addresses: addresses, inboundListener: inboundListener)
    }

    /// A standby's part (inside the pod's namespace): the capture is the active agent's and stays as it is;
    /// with eBPF the pod's inbound connections go to the standby's 15006 listener from now on (the active
    /// agent's and the standby's share a reuseport group, so both keep receiving them until one closes).
    func serve(addresses: [IPAddress], inboundListener: Int32) throws(CaptureError) {
        guard case .ebpf(let capture) = self else { return }
        try capture.setInboundListener(addresses: addresses, inboundListener: inboundListener)
    }

    /// With eBPF, points the pod's addresses at `inboundListener` again where the map lost its entry (the
    /// socket it named closed: a standby that stopped without taking over). True when an entry was missing.
    func repairInboundListener(addresses: [IPAddress], inboundListener: Int32) -> Bool {
        guard case .ebpf(let capture) = self else { return false }
        return capture.restoreMissingInboundListener(addresses: addresses, inboundListener: inboundListener)
    }

    /// Removes the pod's capture completely (inside the pod's namespace).
    func remove() throws(CaptureError) {
        switch self {
        case .nftables:
            try InPodRules.remove()
        case .ebpf(let capture):
            // The capture goes even when the namespace's routing or sysctls cannot be reset.
            let cookie = try EBPFCapture.currentNamespaceCookie()
            defer { capture.release(cookie: cookie) }
            _ = try EBPFCapture.cleanCurrentNamespace()
        }
    }
}
