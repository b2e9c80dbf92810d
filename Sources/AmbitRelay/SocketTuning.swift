public import NIOCore

/// Socket options every proxied socket gets, in one place.
public enum SocketTuning {
    /// Reads adapt between 1 KiB and 256 KiB: an idle connection keeps only a small receive
    /// buffer (NIO pools one per socket), while bulk transfers read in large chunks, which means
    /// fewer system calls, larger HTTP/2 DATA frames and fuller TLS records.
    public static let recvAllocator = AdaptiveRecvByteBufferAllocator(minimum: 512, initial: 2048, maximum: 256 << 10)

    /// The sockets under HBONE connections (mutual TLS, HTTP/2) read in smaller batches. NIOSSL
    /// hands on the plaintext of a whole batch of reads at once, and NIOHTTP2's frame decoder
    /// keeps the largest buffer it ever accumulated for the life of the connection; HBONE
    /// connections are pooled and live long, so 4 × 256 KiB batches left buffers of several MiB
    /// on every busy connection (hundreds of MiB on a node agent after a few bulk transfers).
    public static let hboneRecvAllocator = AdaptiveRecvByteBufferAllocator(
        minimum: 512,
        initial: 2048,
        maximum: hboneMaximumRead
    )
    public static let hboneMaximumRead = 64 << 10
    public static let hboneMessagesPerRead: UInt = 1

    /// Applies the HBONE read settings to a new connection (in its channel initializer).
    public static func tuneHBONEConnection(_ channel: any Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.recvAllocator, value: hboneRecvAllocator)
        try options.setOption(.maxMessagesPerRead, value: hboneMessagesPerRead)
    }
}
