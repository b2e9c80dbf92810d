public import AmbitModel
public import NIOCore
public import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Opens the TCP connection under an HBONE connection, or an upstream connection. The seam the
/// node agent fills with sockets created, marked and bound inside a pod's network namespace.
public protocol Dialer: Sendable {
    /// Connects to `destination` on `eventLoop`, from `source` when given. The channel must
    /// come back with `autoRead` off and remote half-closure allowed; `prepare` runs in its
    /// channel initializer, before it can read anything.
    func connect(
        to destination: IPEndpoint,
        from source: IPAddress?,
        on eventLoop: any EventLoop,
        prepare: (@Sendable (any Channel) throws -> Void)?
    ) -> EventLoopFuture<any Channel>
}

/// Dials from the current network namespace with a plain `ClientBootstrap`.
public struct DirectDialer: Dialer {
    public var connectTimeout: TimeAmount
    /// `SO_MARK` of the socket, set before it connects: a proxy inside a captured network
    /// namespace (a sidecar) marks its own connections 0x539 so that the capture lets them pass.
    public var mark: UInt32?

    public init(connectTimeout: TimeAmount = .seconds(10), mark: UInt32? = nil) {
        self.connectTimeout = connectTimeout
        self.mark = mark
    }

    public func connect(
        to destination: IPEndpoint,
        from source: IPAddress?,
        on eventLoop: any EventLoop,
        prepare: (@Sendable (any Channel) throws -> Void)?
    ) -> EventLoopFuture<any Channel> {
        let address: SocketAddress
        do {
            address = try destination.socketAddress
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        var bootstrap = ClientBootstrap.forRelay(on: eventLoop, prepare: prepare).connectTimeout(connectTimeout)
        if let mark {
            bootstrap = bootstrap.channelOption(.socketOption(.init(rawValue: SO_MARK)), value: .init(mark))
        }
        if let source {
            do {
                bootstrap = bootstrap.bind(to: try IPEndpoint(source, 1).socketAddress.withPort(0))
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        }
        return bootstrap.connect(to: address)
    }
}

extension ClientBootstrap {
    /// A bootstrap whose connection comes back as every dialer promises: `autoRead` off, remote
    /// half-closure allowed, no Nagle, the relay's receive buffers, `prepare` run before it can read.
    public static func forRelay(
        on eventLoop: any EventLoop,
        prepare: (@Sendable (any Channel) throws -> Void)?
    ) -> ClientBootstrap {
        ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: SocketTuning.recvAllocator)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try prepare?(channel) }
            }
    }
}

extension SocketAddress {
    /// The same address with another port.
    func withPort(_ port: Int) throws -> SocketAddress {
        guard let ip = self.ipAddress else { return self }
        return try SocketAddress(ipAddress: ip, port: port)
    }
}

/// Connects upstream (the application port) for an HBONE server, ready for the relay.
public enum UpstreamConnector {
    public static func connect(
        to destination: IPEndpoint,
        on eventLoop: any EventLoop,
        timeout: TimeAmount = .seconds(10)
    ) -> EventLoopFuture<any Channel> {
        DirectDialer(connectTimeout: timeout).connect(
            to: destination,
            from: nil,
            on: eventLoop,
            prepare: RelaySockets.prepare
        )
    }
}
