import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// Conversions between `IPEndpoint` and the kernel's `sockaddr_in` / `sockaddr_in6`.
enum Sockaddr {
    /// Calls `body` with a `sockaddr` for `endpoint` and its length.
    static func withSockaddr<R>(
        _ endpoint: IPEndpoint,
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R
    ) rethrows -> R {
        var storage = sockaddr_storage()
        let length = fill(&storage, endpoint)
        return try withUnsafePointer(to: &storage) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    /// Writes `endpoint` into `storage` and returns the address length.
    static func fill(_ storage: inout sockaddr_storage, _ endpoint: IPEndpoint) -> socklen_t {
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            let bytes = endpoint.address.bytes
            switch endpoint.address {
            case .v4:
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = endpoint.port.bigEndian
                withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: bytes) }
                raw.storeBytes(of: address, as: sockaddr_in.self)
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            case .v6:
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = endpoint.port.bigEndian
                withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: bytes) }
                raw.storeBytes(of: address, as: sockaddr_in6.self)
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }

    /// Reads an IPv4 or IPv6 endpoint; `nil` for other families. IPv4-mapped IPv6 stays IPv6.
    static func endpoint(from storage: sockaddr_storage) -> IPEndpoint? {
        withUnsafeBytes(of: storage) { raw in
            switch Int32(storage.ss_family) {
            case AF_INET:
                let address = raw.load(as: sockaddr_in.self)
                let bytes = withUnsafeBytes(of: address.sin_addr) { Array($0) }
                return IPAddress(bytes: bytes).map { IPEndpoint($0, UInt16(bigEndian: address.sin_port)) }
            case AF_INET6:
                let address = raw.load(as: sockaddr_in6.self)
                let bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
                return IPAddress(bytes: bytes).map { IPEndpoint($0, UInt16(bigEndian: address.sin6_port)) }
            default:
                return nil
            }
        }
    }

    /// Runs a `getsockname`-shaped call and decodes its result.
    static func query(
        _ operation: String,
        fd: Int32,
        _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32
    ) throws(CaptureError) -> IPEndpoint {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard result == 0 else { throw CaptureError.lastSystemError(operation, "socket \(fd)") }
        guard let endpoint = endpoint(from: storage) else {
            throw CaptureError.invalidArgument("\(operation) on socket \(fd): family \(storage.ss_family) is not IP")
        }
        return endpoint
    }
}
