import CAmbitShim
import Glibc
public import NIOPosix

/// Runs the event loops of `group` as an unprivileged process would: each loop thread drops
/// `CAP_NET_ADMIN` from its effective capabilities (capabilities are per thread, so the rest of the
/// test process keeps them). A socket option that needs the capability then fails on those loops as
/// it does in a container without it (the waypoint's, in Kubernetes).
public func dropNetworkAdministration(on group: MultiThreadedEventLoopGroup) async throws {
    let capNetAdmin: Int32 = 12
    for loop in group.makeIterator() {
        try await loop.submit {
            guard ambit_drop_thread_capability(capNetAdmin) == 0 else {
                throw UnprivilegedError(errno: errno)
            }
        }.get()
    }
}

/// `capset` failed.
public struct UnprivilegedError: Error, CustomStringConvertible {
    public let errno: Int32
    public var description: String {
        "cannot drop CAP_NET_ADMIN on an event loop thread: \(String(cString: strerror(errno)))"
    }
}
