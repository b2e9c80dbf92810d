import AmbitModel
import Glibc

/// Addresses on the interfaces of the calling thread's network namespace.
enum InterfaceAddresses {
    static func current() -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr {
                switch Int32(address.pointee.sa_family) {
                case AF_INET:
                    address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        result.append(.v4(UInt32(bigEndian: pointer.pointee.sin_addr.s_addr)))
                    }
                case AF_INET6:
                    address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        let bytes = withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                        if let ip = IPAddress(bytes: bytes) { result.append(ip) }
                    }
                default:
                    break
                }
            }
            cursor = entry.pointee.ifa_next
        }
        return result
    }
}
