public import AmbitModel

/// Why an HBONE tunnel could not be opened or was torn down.
public typealias HBONEError = CodedError<HBONEErrorCode>

public enum HBONEErrorCode: Hashable, Sendable {
    /// The server answered CONNECT with this status.
    case status(Int)
    case connectTimeout
    case responseTimeout
    case connectFailed
    case handshakeFailed
    /// The server did not negotiate ALPN `h2`.
    case protocolNotNegotiated
    case noCertificate
    case connectionClosed
    case streamReset
    /// The CONNECT went unanswered and nothing of the downstream was sent: a stream a GOAWAY left out (NIO
    /// closes it with CANCEL), the peer's REFUSED_STREAM, HEADERS that could not be sent. The pool sends it
    /// once more, on a connection that is not going away (RFC 9113 §8.7).
    case streamRefused
    case shuttingDown
}
