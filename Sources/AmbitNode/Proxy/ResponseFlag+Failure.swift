import AmbitHBONE
import AmbitIdentity
import AmbitTelemetry

extension ResponseFlag {
    /// The flag ztunnel records for a connection whose upstream could not be reached, by what failed.
    init(failure error: any Error) {
        switch error {
        case let error as HBONEError:
            switch error.code {
            case .handshakeFailed: self = .tlsFailure
            case .protocolNotNegotiated: self = .http2HandshakeFailure
            case .connectTimeout: self = .networkPolicy
            default: self = .connectFailure
            }
        case is IdentityError:
            self = .identityError
        default:
            self = .connectFailure
        }
    }
}
