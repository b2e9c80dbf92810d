import AmbitCapture
import AmbitHBONE
import AmbitModel
import AmbitRelay
import NIOCore
import Synchronization

/// A pod the agent captures: its namespace handle, its three listeners, its HBONE server. Its live
/// connections are the proxies' (``ConnectionTracker``).
final class CapturedPod: Sendable {
    let record: PodRecord
    let netns: NetworkNamespace
    let server: HBONEServer
    /// Every listener of the pod, the HBONE one included.
    let listeners: Mutex<[any Channel]>
    /// The HBONE listener: ``HBONEServer/shutdown(on:)`` closes it itself, then waits for its connections.
    let hboneListener = Mutex<(any Channel)?>(nil)
    /// The 15006 listener's descriptor (its channel owns it; valid while the pod is captured), for eBPF's
    /// `inbound_listeners`.
    let inboundListenerFD: Int32

    init(record: PodRecord, netns: NetworkNamespace, server: HBONEServer, inboundListenerFD: Int32) {
        self.record = record
        self.netns = netns
        self.server = server
        self.listeners = Mutex([])
        self.inboundListenerFD = inboundListenerFD
    }

    /// Stops accepting: the relay listeners close, and the HBONE server's shutdown starts (its listener closes,
    /// every connection gets GOAWAY). Returns once no listener of the pod accepts, with what completes when
    /// every HBONE connection has closed.
    ///
    /// Every listener stops reading first and the sockets it already accepted reach their proxies
    /// (``RelaySockets/pauseAccepting(_:group:on:)``); closing then drops none of them, and what the
    /// kernel still queues moves to a successor's listener.
    func stopAccepting(group: any EventLoopGroup) async -> EventLoopFuture<Void> {
        let hbone = hboneListener.withLock { $0 }
        let relay = listeners.withLock { $0 }.filter { $0 !== hbone }
        let eventLoop = group.next()
        // The HBONE listener is paused the same way by its server's shutdown.
        try? await RelaySockets.pauseAccepting(relay, group: group, on: eventLoop).get()
        for listener in relay { try? await listener.close() }
        let closed = server.shutdown(on: eventLoop)
        try? await hbone?.closeFuture.get()
        return closed
    }

    var addresses: [IPAddress] { record.addresses }
}

/// The captured pods, by uid and by address. Lookups happen per connection.
final class PodRegistry: Sendable {
    private struct State {
        var byUID: [String: CapturedPod] = [:]
        var byAddress: [IPAddress: CapturedPod] = [:]
    }

    private let state = Mutex(State())

    func insert(_ pod: CapturedPod) {
        state.withLock { state in
            state.byUID[pod.record.uid] = pod
            for address in pod.addresses { state.byAddress[address] = pod }
        }
    }

    @discardableResult
    func remove(uid: String) -> CapturedPod? {
        state.withLock { state in
            guard let pod = state.byUID.removeValue(forKey: uid) else { return nil }
            for address in pod.addresses where state.byAddress[address] === pod {
                state.byAddress.removeValue(forKey: address)
            }
            return pod
        }
    }

    func pod(uid: String) -> CapturedPod? { state.withLock { $0.byUID[uid] } }
    func pod(at address: IPAddress) -> CapturedPod? { state.withLock { $0.byAddress[address] } }
    var all: [CapturedPod] {
        state.withLock { Array($0.byUID.values) }.sorted { $0.record.displayName < $1.record.displayName }
    }
}
