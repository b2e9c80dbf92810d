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
    case shuttingDown
}
