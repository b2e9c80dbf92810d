public import NIOCore

extension RelaySockets {
    /// Stops `listeners` accepting without dropping a socket they already accepted, so that closing them
    /// afterwards loses nothing: what is still in the kernel's queue then moves to another listener of the
    /// same port (`SO_REUSEPORT` with `net.ipv4.tcp_migrate_req`), or is reset by the kernel if there is none.
    ///
    /// A listener hands each socket it accepts to an event loop of `group`; the socket's set-up runs there,
    /// then hops back to the listener's loop, and NIO closes the socket, with a clean FIN, if the listener
    /// closed in between. So: reading stops on every listener (no further `accept(2)` once the loop's current
    /// read is done), then every loop of `group` runs what it has queued, twice, and only then does the
    /// returned future complete. Called on a listener's own loop in the middle of its read, the rest of that
    /// read still accepts; the second round covers those sockets.
    ///
    /// Two assumptions: `group` is the group the listeners hand their sockets to, and their child channel
    /// initializers complete synchronously (as ``acceptingBootstrap(group:accept:)``'s and HBONEServer's do),
    /// so each set-up queues its hop back within the task that runs it.
    public static func pauseAccepting(
        _ listeners: [any Channel],
        group: any EventLoopGroup,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        // A listener already closed has nothing to pause: its failure is not the caller's.
        let paused = listeners.map { $0.setOption(ChannelOptions.autoRead, value: false) }
        return EventLoopFuture.andAllComplete(paused, on: eventLoop).flatMap { runQueuedWork(of: group, on: eventLoop) }
    }

    /// Completes once every loop of `group` has run what it had queued, twice: the second round also runs
    /// what the first queued on another loop (a socket's set-up hopping back to its listener's loop, a close
    /// after a socket option).
    public static func runQueuedWork(of group: any EventLoopGroup, on eventLoop: any EventLoop) -> EventLoopFuture<Void>
    {
        let loops = Array(group.makeIterator())
        @Sendable func oneRound() -> EventLoopFuture<Void> {
            EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: eventLoop)
        }
        return oneRound().flatMap(oneRound)
    }
}
