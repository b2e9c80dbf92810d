public import NIOCore

/// Socket options every proxied socket gets, in one place.
public enum SocketTuning {
    /// Reads adapt between 1 KiB and 256 KiB: an idle connection keeps only a small receive
    /// buffer (NIO pools one per socket), while bulk transfers read in large chunks, which means
    /// fewer system calls, larger HTTP/2 DATA frames and fuller TLS records.
    public static let recvAllocator = AdaptiveRecvByteBufferAllocator(minimum: 512, initial: 2048, maximum: 256 << 10)
}
