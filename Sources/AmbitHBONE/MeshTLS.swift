public import AmbitIdentity
public import AmbitModel
import CAmbitShim
public import FoundationEssentials
public import NIOCore
import NIOPosix
public import NIOSSL
import SwiftASN1
import Synchronization
public import X509

/// The mutual-TLS half of HBONE: TLS 1.3 only, ALPN `h2`, no SNI, certificates from the
/// workload's ``WorkloadCertificate`` and peers verified in Swift against the mesh roots with
/// ``SpiffePeerVerifier`` (chain, validity, one SPIFFE URI SAN in the trust domain, and for
/// clients one of the identities expected for the destination), through a
/// ``CachingPeerVerifier`` that accepts a chain it accepted before without verifying it again.
///
/// BoringSSL's own chain verification is replaced by the custom callback, so the only
/// certificate logic is the audited Swift code; BoringSSL still enforces that a client sends a
/// certificate at all.
public enum MeshTLS {
    public static let alpn = "h2"

    /// A server context presenting `certificate` and requiring a client certificate.
    public static func serverContext(presenting certificate: WorkloadCertificate, roots: [Certificate]) throws
        -> NIOSSLContext
    {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try chain(certificate),
            privateKey: .privateKey(try privateKey(certificate))
        )
        configure(&configuration, roots: roots)
        let context = try NIOSSLContext(configuration: configuration)
        try disableSessionTickets(context)
        return context
    }

    /// Turns TLS session tickets off in a server context. A resumed TLS 1.3 session sends no
    /// certificate, so there is no chain to verify and no identity for its streams; a client that
    /// resumed (rustls and Envoy do when the server offers a ticket) would have every CONNECT
    /// refused. Without tickets every connection is a full handshake. swift-nio-ssl has no option
    /// for it: its context's BoringSSL `SSL_CTX` is reached by reflection. A swift-nio-ssl that
    /// changes that layout makes every HBONE server fail to listen (``sessionTicketControl``).
    static func disableSessionTickets(_ context: NIOSSLContext) throws {
        let pointer = Mirror(reflecting: context).children.first { $0.label == "sslContext" }?.value as? OpaquePointer
        guard let pointer, ambit_tls_disable_session_tickets(UnsafeMutableRawPointer(pointer)) == 0 else {
            throw HBONEError(
                .handshakeFailed,
                "cannot turn TLS session tickets off (swift-nio-ssl's NIOSSLContext no longer holds `sslContext`)"
            )
        }
    }

    /// Whether server contexts can have their session tickets turned off, tried once on a
    /// throwaway context: an HBONE server refuses to listen without it.
    static let sessionTicketControl: Result<Void, HBONEError> = {
        do {
            try disableSessionTickets(try NIOSSLContext(configuration: .makeClientConfiguration()))
            return .success(())
        } catch let error as HBONEError {
            return .failure(error)
        } catch {
            return .failure(HBONEError(.handshakeFailed, "cannot build a TLS context: \(error)"))
        }
    }()

    /// A client context presenting `certificate`.
    public static func clientContext(presenting certificate: WorkloadCertificate, roots: [Certificate]) throws
        -> NIOSSLContext
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = try chain(certificate)
        configuration.privateKey = .privateKey(try privateKey(certificate))
        configure(&configuration, roots: roots)
        return try NIOSSLContext(configuration: configuration)
    }

    private static func configure(_ configuration: inout TLSConfiguration, roots: [Certificate]) {
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.applicationProtocols = [alpn]
        // HTTP/2 already delimits everything; waiting long for the peer's close_notify on close
        // only delays freeing the connection (NIOSSL's default is 5 s).
        configuration.shutdownTimeout = .milliseconds(250)
        // Request (server) and require a peer certificate; the callback below decides.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(
            roots.compactMap { try? NIOSSLCertificate(bytes: derBytes($0), format: .der) }
        )
    }

    /// The peer verification both sides use, through `verifier` (which remembers the chains it
    /// accepted; see ``CachingPeerVerifier``). `onAccept` learns the peer's identity before the
    /// handshake completes; the handler keeps the presented chain as the validated one.
    public static func verifier(
        _ verifier: CachingPeerVerifier,
        expected: Set<SpiffeID>? = nil,
        now: @escaping @Sendable () -> Date = { Date() },
        onAccept: (@Sendable (SpiffeID) -> Void)? = nil,
        onReject: (@Sendable (String) -> Void)? = nil
    ) -> NIOSSLCustomVerificationCallbackWithMetadata {
        { certificates, promise in
            let chain: [[UInt8]]
            do {
                chain = try certificates.map { try $0.toDERBytes() }
            } catch {
                onReject?("peer certificate cannot be encoded: \(error)")
                promise.succeed(.failed)
                return
            }
            let finish: @Sendable (CachingPeerVerifier.Outcome) -> Void = { outcome in
                switch outcome {
                case .accepted(let identity, _):
                    onAccept?(identity)
                    promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(certificates))))
                case .rejected(let reason):
                    onReject?(reason)
                    promise.succeed(.failed)
                }
            }
            let time = now()
            // A chain accepted before is answered at once.
            if let outcome = verifier.verifyFromMemory(chain: chain, expected: expected, at: time) {
                finish(outcome)
                return
            }
            // On the connection's own event loop: no thread hop, and no dependence on the shared
            // cooperative pool, which blocking work elsewhere in the process could hold up.
            let executor = MultiThreadedEventLoopGroup.currentEventLoop.map(EventLoopTaskExecutor.init)
            Task(executorPreference: executor) {
                finish(await verifier.verify(chain: chain, expected: expected, at: time))
            }
        }
    }

    private static func chain(_ certificate: WorkloadCertificate) throws -> [NIOSSLCertificateSource] {
        // The root is the peer's trust anchor already; sending it only costs bytes.
        let sent = certificate.chain.count > 1 ? certificate.chain.dropLast() : certificate.chain[...]
        return try sent.map { .certificate(try NIOSSLCertificate(bytes: derBytes($0), format: .der)) }
    }

    private static func privateKey(_ certificate: WorkloadCertificate) throws -> NIOSSLPrivateKey {
        let pem = try certificate.privateKey.serializeAsPEM().pemString
        return try NIOSSLPrivateKey(bytes: Array(pem.utf8), format: .pem)
    }

    static func derBytes(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }
}

/// TLS contexts by certificate, rebuilt when a certificate rotates. Contexts are costly to build
/// (key parsing, BoringSSL setup) and are shared by every connection with the same identity.
public final class TLSContextCache: Sendable {
    private struct Key: Hashable {
        let serial: Certificate.SerialNumber
        let server: Bool
    }

    private let roots: [Certificate]
    private let contexts = Mutex<[Key: NIOSSLContext]>([:])

    public init(roots: [Certificate]) {
        self.roots = roots
    }

    public func serverContext(for certificate: WorkloadCertificate) throws -> NIOSSLContext {
        try context(for: certificate, server: true)
    }

    public func clientContext(for certificate: WorkloadCertificate) throws -> NIOSSLContext {
        try context(for: certificate, server: false)
    }

    private func context(for certificate: WorkloadCertificate, server: Bool) throws -> NIOSSLContext {
        let key = Key(serial: certificate.leaf.serialNumber, server: server)
        if let cached = contexts.withLock({ $0[key] }) { return cached }
        let context =
            server
            ? try MeshTLS.serverContext(presenting: certificate, roots: roots)
            : try MeshTLS.clientContext(presenting: certificate, roots: roots)
        contexts.withLock { cache in
            // Keep the cache small: contexts of rotated-away certificates are dropped.
            if cache.count > 256 { cache.removeAll() }
            cache[key] = context
        }
        return context
    }
}

/// Runs a task's jobs on an event loop (for work that must not wait for the cooperative pool).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
