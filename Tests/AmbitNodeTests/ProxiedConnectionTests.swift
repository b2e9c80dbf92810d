import AmbitModel
import AmbitRelay
import AmbitTelemetry
import AmbitTestSupport
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import AmbitNode

/// The connection record: one owner per connection, finished exactly once whatever reports its end,
/// the only one that resets the downstream and writes the telemetry.
@Suite struct ProxiedConnectionTests {
    /// A record with its tracker, telemetry and log, over an embedded downstream socket.
    struct Fixture {
        let metrics = MeshMetrics()
        let sink = LogSink()
        let tracker = ConnectionTracker()
        let telemetry: ConnectionTelemetry
        let downstream: EmbeddedChannel
        let loop = EmbeddedEventLoop()
        static let pod = PodRecord(
            uid: "uid-server",
            namespace: "demo",
            name: "server",
            ips: ["10.244.2.2"],
            netnsPath: "/var/run/netns/x",
            containerID: nil
        )
        static let labels = TrafficLabels(
            reporter: .destination,
            source: .init(workload: "client", namespace: "demo", principal: .test("demo", "client")),
            destination: .init(workload: "server", namespace: "demo", principal: .test("demo", "server")),
            connectionSecurityPolicy: .mutualTLS
        )
        static let description = ProxiedConnection.Description(
            labels,
            sourcePod: "client-7d9f-abcde",
            destinationPod: "server-5c6b-fghij"
        )

        init() throws {
            let sink = self.sink
            telemetry = ConnectionTelemetry(
                metrics: metrics,
                logger: Logger(label: "access") { JSONLogHandler(label: $0, level: .info, sink: sink) }
            )
            downstream = EmbeddedChannel(loop: loop)
            try downstream.connect(to: SocketAddress(ipAddress: "10.244.1.2", port: 40000)).wait()
        }

        func connection(downstream: (any Channel)? = nil) throws -> ProxiedConnection {
            ProxiedConnection(
                .inbound,
                pod: Self.pod,
                source: try IPEndpoint(parsing: "10.244.1.2:40000"),
                destination: try IPEndpoint(parsing: "10.244.2.2:8080"),
                description: Self.description,
                downstream: downstream,
                tracker: tracker,
                telemetry: telemetry
            )
        }

        func counter(_ name: String, flag: String) -> String? {
            metrics.render().split(separator: "\n")
                .first { $0.hasPrefix("\(name){") && $0.contains(#"response_flags="\#(flag)""#) }?
                .split(separator: " ").last.map(String.init)
        }

        /// The access-log lines, decoded.
        /// The JSON lines, every value as text (numbers too, so `bytes_sent` reads "22").
        var log: [[String: String]] {
            sink.lines.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?.mapValues { "\($0)" }
            }
        }

        /// The JSON lines as parsed.
        var rawLog: [[String: Any]] {
            sink.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    static let admission = ProxiedConnection.Admission(
        target: try! IPEndpoint(parsing: "10.244.2.2:8080"),
        peerIdentity: .test("demo", "client"),
        sourceAddress: IPAddress("10.244.1.2")!,
        plaintext: false
    )

    @Test func aRefusalResetsTheDownstreamAndCountsOnce() throws {
        let fixture = try Fixture()
        let connection = try fixture.connection(downstream: fixture.downstream)
        #expect(fixture.tracker.count == 1)
        connection.refuse(Fixture.description, flag: .denied, reason: "denied by ns/deny")
        fixture.loop.run()
        #expect(!fixture.downstream.isActive, "a refused connection is reset")
        #expect(fixture.tracker.count == 0)
        // Opened before it was decided, closed with the reason (ztunnel's counting).
        #expect(fixture.counter("istio_tcp_connections_opened_total", flag: "-") == "1")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "DENY") == "1")
        // A late report (a failure, a revocation) changes nothing.
        connection.fail(ChannelError.ioOnClosedChannel)
        connection.revoke(reason: "late")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "DENY") == "1")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "CONNECT") == nil)
        let lines = fixture.log
        #expect(lines.count == 1)
        #expect(lines.first?["message"] == "connection complete")
        #expect(lines.first?["error"] == "denied by ns/deny")
        #expect(lines.first?["response_flags"] == "DENY")
    }

    @Test func aRelayThatEndsIsCountedWithItsBytesOnceEvenWhenAFailureFollows() throws {
        let fixture = try Fixture()
        let connection = try fixture.connection(downstream: fixture.downstream)
        connection.admit(Fixture.description, admission: Self.admission, hboneAddress: Self.admission.target)
        let finished = fixture.loop.makePromise(of: RelaySummary.self)
        connection.relay(finished.futureResult)
        #expect(fixture.tracker.count == 1, "tracked while the relay runs")
        finished.succeed(RelaySummary(requestBytes: 11, responseBytes: 22, error: nil))
        fixture.loop.run()
        connection.fail(ChannelError.ioOnClosedChannel)
        #expect(fixture.tracker.count == 0)
        #expect(fixture.downstream.isActive, "an ended relay leaves the downstream to the relay")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "-") == "1")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "CONNECT") == nil)
        let line = try #require(fixture.log.first)
        #expect(fixture.log.count == 1)
        // At the destination, the request bytes are received and the response bytes sent (ztunnel's keys).
        #expect(line["bytes_recv"] == "11")
        #expect(line["bytes_sent"] == "22")
        // Numbers, as ztunnel writes them.
        #expect(fixture.rawLog.first?["bytes_sent"] as? Int == 22)
        #expect(line["direction"] == "inbound")
        #expect(line["src.identity"] == "spiffe://cluster.local/ns/demo/sa/client")
        #expect(line["dst.hbone_addr"] == "10.244.2.2:8080")
        #expect(line["src.workload"] == "client-7d9f-abcde", "the access log names pods, as ztunnel's")
        #expect(fixture.counter("istio_tcp_received_bytes_total", flag: "-") == "11", "request bytes are received")
        #expect(fixture.counter("istio_tcp_sent_bytes_total", flag: "-") == "22", "response bytes are sent")
        #expect(line["duration"]?.hasSuffix("ms") == true)
    }

    @Test func aFailedUpstreamResetsTheDownstreamWithConnect() throws {
        let fixture = try Fixture()
        let connection = try fixture.connection(downstream: fixture.downstream)
        connection.admit(Fixture.description)
        let finished = fixture.loop.makePromise(of: RelaySummary.self)
        connection.relay(finished.futureResult)
        finished.fail(ChannelError.connectTimeout(.seconds(10)))
        fixture.loop.run()
        #expect(!fixture.downstream.isActive)
        #expect(fixture.counter("istio_tcp_connections_opened_total", flag: "-") == "1")
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "CONNECT") == "1")
        #expect(fixture.tracker.count == 0)
    }

    @Test func aRevokedConnectionIsResetAndEndsAsDenied() throws {
        let fixture = try Fixture()
        // An HBONE tunnel: no downstream socket of ours; the application's socket is reset instead.
        let connection = try fixture.connection()
        connection.admit(Fixture.description, admission: Self.admission)
        let application = EmbeddedChannel(loop: fixture.loop)
        try application.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
        connection.reached(application)
        let finished = fixture.loop.makePromise(of: RelaySummary.self)
        connection.relay(finished.futureResult)
        connection.revoke(reason: "closed: policy now denies it")
        fixture.loop.run()
        #expect(!application.isActive, "the revoked connection's application socket is reset")
        #expect(fixture.tracker.count == 1, "still tracked until its relay has ended")
        finished.succeed(RelaySummary(requestBytes: 5, responseBytes: 0, error: nil))
        fixture.loop.run()
        #expect(fixture.tracker.count == 0)
        #expect(fixture.counter("istio_tcp_connections_closed_total", flag: "DENY") == "1")
        #expect(fixture.log.first?["error"] == "closed: policy now denies it")
    }

    @Test func aRevocationBeforeTheApplicationIsReachedResetsItOnArrival() throws {
        let fixture = try Fixture()
        let connection = try fixture.connection()
        connection.admit(Fixture.description, admission: Self.admission)
        connection.revoke(reason: "closed: policy now denies it")
        let application = EmbeddedChannel(loop: fixture.loop)
        try application.connect(to: SocketAddress(ipAddress: "10.244.2.2", port: 8080)).wait()
        connection.reached(application)
        fixture.loop.run()
        #expect(!application.isActive)
    }

    @Test func plaintextConnectionsLogNoIdentity() throws {
        let fixture = try Fixture()
        var description = Fixture.description
        description.labels.source.principal = nil
        description.labels.connectionSecurityPolicy = .unknown
        let connection = try fixture.connection(downstream: fixture.downstream)
        connection.refuse(description, flag: .denied, reason: "PeerAuthentication STRICT")
        let line = try #require(fixture.log.first)
        #expect(line["src.identity"] == nil)
        #expect(line["dst.identity"] == nil, "identities are logged for mutual TLS only, as ztunnel does")
        #expect(line["src.workload"] == "client-7d9f-abcde")
    }
}
