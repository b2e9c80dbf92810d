import AmbitModel
import AmbitTestSupport
import NIOCore
import Testing

@testable import AmbitHBONE

@Suite struct HBONEPoolStateMachineTests {
    typealias Machine = HBONEPoolStateMachine
    let keyA = HBONEPoolKey(
        sourceIdentity: .test("a", "client"),
        destinationIdentities: [.test("b", "server")],
        nextHop: IPEndpoint(.v4(0x0A00_0002), 15008),
        sourceAddress: .v4(0x0A00_0001)
    )
    let keyB = HBONEPoolKey(
        sourceIdentity: .test("a", "client"),
        destinationIdentities: [.test("b", "server")],
        nextHop: IPEndpoint(.v4(0x0A00_0003), 15008),
        sourceAddress: .v4(0x0A00_0001)
    )
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func request(_ value: Int) -> Machine.RequestID { Machine.RequestID(value: value) }
    func connection(_ value: Int) -> Machine.ConnectionID { Machine.ConnectionID(value: value) }

    @Test func opensAnotherConnectionPastOneHundredStreams() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        #expect(machine.lease(request(0), key: keyA) == [.startConnection(connection(0), keyA)])
        for index in 1..<100 {
            #expect(machine.lease(request(index), key: keyA).isEmpty)  // waits on the connecting one
        }
        #expect(machine.lease(request(100), key: keyA) == [.startConnection(connection(1), keyA)])
        let served = machine.connectionReady(connection(0), serverMaxStreams: 200, now: start)
        #expect(served == (0..<100).map { .useConnection(request($0), connection(0)) })
        #expect(machine.connection(connection(0))?.activeStreams == 100)
        #expect(machine.connection(connection(0))?.state == .ready(maxStreams: 100))
    }

    @Test func respectsAServerLimitBelowTheClientLimit() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        for index in 1..<80 { _ = machine.lease(request(index), key: keyA) }
        let actions = machine.connectionReady(connection(0), serverMaxStreams: 50, now: start)
        #expect(actions.prefix(50) == ArraySlice((0..<50).map { .useConnection(request($0), connection(0)) }))
        #expect(actions.last == .startConnection(connection(1), keyA))
        #expect(machine.connection(connection(1))?.waiters == (50..<80).map { request($0) })
        // The full connection takes no more; the new one gets the next lease.
        #expect(machine.lease(request(80), key: keyA).isEmpty)
        #expect(machine.connection(connection(1))?.waiters.last == request(80))
    }

    @Test func reusesAReadyConnectionAndKeepsKeysApart() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.connectionReady(connection(0), serverMaxStreams: nil, now: start)
        #expect(machine.lease(request(1), key: keyA) == [.useConnection(request(1), connection(0))])
        #expect(machine.lease(request(2), key: keyB) == [.startConnection(connection(1), keyB)])
        #expect(machine.connections(for: keyA).count == 1)
    }

    @Test func closesIdleConnectionsAfterTheTimeout() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.connectionReady(connection(0), serverMaxStreams: nil, now: start)
        let closedAt = start + .seconds(5)
        #expect(
            machine.streamClosed(on: connection(0), now: closedAt) == [
                .scheduleIdleCheck(connection(0), closedAt + .seconds(60))
            ]
        )
        // A new stream in between makes it busy again: the check does nothing.
        #expect(machine.lease(request(1), key: keyA) == [.useConnection(request(1), connection(0))])
        #expect(machine.idleCheck(connection(0), now: closedAt + .seconds(60)).isEmpty)
        let idleAgain = closedAt + .seconds(70)
        _ = machine.streamClosed(on: connection(0), now: idleAgain)
        #expect(
            machine.idleCheck(connection(0), now: idleAgain + .seconds(59)) == [
                .scheduleIdleCheck(connection(0), idleAgain + .seconds(60))
            ]
        )
        #expect(machine.idleCheck(connection(0), now: idleAgain + .seconds(60)) == [.closeConnection(connection(0))])
        #expect(machine.connectionClosed(connection(0)).isEmpty)
        #expect(machine.connections.isEmpty)
    }

    @Test func aConnectionWhoseStreamsComeAndGoKeepsOneIdleCheck() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.connectionReady(connection(0), serverMaxStreams: nil, now: start)
        #expect(
            machine.streamClosed(on: connection(0), now: start) == [
                .scheduleIdleCheck(connection(0), start + .seconds(60))
            ]
        )
        // One stream at a time, 1,000 times (a client opening connections one after another): before, each
        // idle moment scheduled a 60 s timer of its own, 1,000 of them pending at once.
        var scheduled = 0
        for index in 1...1_000 {
            _ = machine.lease(request(index), key: keyA)
            scheduled += machine.streamClosed(on: connection(0), now: start + .milliseconds(Int64(index))).count
        }
        #expect(scheduled == 0)
        let last = start + .milliseconds(1_000)
        #expect(
            machine.idleCheck(connection(0), now: start + .seconds(60)) == [
                .scheduleIdleCheck(connection(0), last + .seconds(60))
            ]
        )
        #expect(machine.idleCheck(connection(0), now: last + .seconds(60)) == [.closeConnection(connection(0))])
    }

    @Test func drainsAfterGoAway() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.connectionReady(connection(0), serverMaxStreams: nil, now: start)
        #expect(machine.goAwayReceived(connection(0)).isEmpty)
        #expect(machine.lease(request(1), key: keyA) == [.startConnection(connection(1), keyA)])
        #expect(machine.streamClosed(on: connection(0), now: start) == [.closeConnection(connection(0))])
    }

    @Test func goAwayWhileConnectingMovesTheWaiters() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.lease(request(1), key: keyA)
        #expect(
            machine.goAwayReceived(connection(0)) == [
                .startConnection(connection(1), keyA), .closeConnection(connection(0)),
            ]
        )
        #expect(machine.connection(connection(1))?.waiters == [request(0), request(1)])
    }

    @Test func failsWaitersWhenTheConnectionFails() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.lease(request(1), key: keyA)
        let error = HBONEError(.connectFailed, "refused")
        #expect(
            machine.connectionFailed(connection(0), error: error) == [
                .failRequest(request(0), error), .failRequest(request(1), error),
            ]
        )
        #expect(machine.connections.isEmpty)
    }

    @Test func shutdownClosesIdleDrainsBusyAndRefusesNewWork() {
        var machine = Machine(clientMaxStreams: 100, idleTimeout: .seconds(60))
        _ = machine.lease(request(0), key: keyA)
        _ = machine.connectionReady(connection(0), serverMaxStreams: nil, now: start)
        _ = machine.lease(request(1), key: keyB)
        _ = machine.connectionReady(connection(1), serverMaxStreams: nil, now: start)
        _ = machine.streamClosed(on: connection(1), now: start)
        #expect(machine.shutdown() == [.closeConnection(connection(1))])
        guard case .failRequest(request(2), let error) = machine.lease(request(2), key: keyA).first else {
            Issue.record("a lease during shutdown must fail")
            return
        }
        #expect(error.code == .shuttingDown)
        #expect(machine.connectionClosed(connection(1)).isEmpty)
        #expect(machine.streamClosed(on: connection(0), now: start) == [.closeConnection(connection(0))])
        #expect(machine.connectionClosed(connection(0)) == [.shutdownComplete])
    }
}
