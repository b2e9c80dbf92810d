import AmbitModel
import AmbitTelemetry
import NIOHTTP1
import Testing

@testable import AmbitWaypoint

/// The HTTP exchange's rules, without a socket: tries, retries, timers, commitment and endings.
@Suite struct HTTPExchangeTests {
    typealias Action = HTTPExchange.Action

    static let a = try! IPEndpoint(parsing: "10.244.2.2:8080")
    static let b = try! IPEndpoint(parsing: "10.244.2.3:8080")

    static func finish(
        _ status: Int,
        _ flag: ResponseFlag,
        _ upstream: HTTPExchange.Completion.Upstream,
        _ downstream: HTTPExchange.Completion.Downstream
    ) -> Action {
        .finish(.init(status: status, flag: flag, upstream: upstream, downstream: downstream))
    }

    static func local(_ status: HTTPResponseStatus, _ body: String, _ flag: ResponseFlag)
        -> HTTPExchange.Completion.Downstream
    {
        .respond(LocalResponse(status: status, body: body, flag: flag))
    }

    @Test func aResponseIsCommittedAndEndsCleanly() {
        var exchange = HTTPExchange(policy: .init(requestTimeout: .seconds(15)))
        #expect(
            exchange.start() == [.scheduleRequestTimeout(.seconds(15)), .send(attempt: 1, avoiding: [], timeout: nil)]
        )
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(!exchange.isCommitted)
        #expect(exchange.responseHead(attempt: 1, status: 200) == [.cancelPerTryTimeout, .commit(status: 200)])
        #expect(exchange.isCommitted && exchange.forwardsBody(attempt: 1))
        #expect(exchange.responseEnd(attempt: 1) == [Self.finish(200, .none, .release, .endResponse)])
        #expect(exchange.isFinished)
        // Finished once: nothing more happens, whatever arrives.
        #expect(exchange.requestTimedOut().isEmpty)
        #expect(exchange.downstreamClosed().isEmpty)
        #expect(exchange.failed(attempt: 1, .reset("late")).isEmpty)
    }

    @Test func connectFailuresAreRetriedAfterTheBackoffOnAnotherEndpointThenAnsweredLocally() {
        let retry = HTTPRoute.Retry(attempts: 2, backoff: .milliseconds(25), retryOn: ["connect-failure"])
        var exchange = HTTPExchange(policy: .init(retry: retry))
        #expect(exchange.start() == [.send(attempt: 1, avoiding: [], timeout: nil)])
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(exchange.failed(attempt: 1, .connect("refused")) == [.backoff(.milliseconds(25))])
        #expect(exchange.failed(attempt: 1, .connect("again")).isEmpty, "one failure per try")
        #expect(exchange.backoffElapsed() == [.send(attempt: 2, avoiding: [Self.a], timeout: nil)])
        exchange.chose(attempt: 2, endpoint: Self.b)
        #expect(exchange.failed(attempt: 2, .connect("refused")) == [.backoff(.milliseconds(25))])
        #expect(exchange.backoffElapsed() == [.send(attempt: 3, avoiding: [Self.a, Self.b], timeout: nil)])
        #expect(
            exchange.failed(attempt: 3, .connect("refused"))
                == [
                    Self.finish(
                        503,
                        .upstreamConnectFailure,
                        .close,
                        Self.local(.serviceUnavailable, "upstream connect error: refused\n", .upstreamConnectFailure)
                    )
                ]
        )
        #expect(exchange.attempts == 3)
    }

    @Test func aResetIsNotRetriedUnlessTheRouteSaysSo() {
        var exchange = HTTPExchange(policy: .init(retry: .init(attempts: 3, retryOn: ["connect-failure"])))
        _ = exchange.start()
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(
            exchange.failed(attempt: 1, .reset("closed"))
                == [
                    Self.finish(
                        503,
                        .upstreamReset,
                        .close,
                        Self.local(
                            .serviceUnavailable,
                            "upstream connect error or disconnect/reset before headers: closed\n",
                            .upstreamReset
                        )
                    )
                ]
        )
    }

    @Test func aRetriedStatusAbandonsTheTryAndLateEventsOfItAreIgnored() {
        var exchange = HTTPExchange(policy: .init(retry: .init(attempts: 1, retryOn: ["503"])))
        _ = exchange.start()
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(
            exchange.responseHead(attempt: 1, status: 503)
                == [.cancelPerTryTimeout, .abandonUpstream, .send(attempt: 2, avoiding: [Self.a], timeout: nil)]
        )
        // The abandoned try's body and end no longer count.
        #expect(!exchange.forwardsBody(attempt: 1))
        #expect(exchange.responseEnd(attempt: 1).isEmpty)
        exchange.chose(attempt: 2, endpoint: Self.b)
        // No retry left: the second 503 is the answer.
        #expect(exchange.responseHead(attempt: 2, status: 503) == [.cancelPerTryTimeout, .commit(status: 503)])
        #expect(exchange.responseEnd(attempt: 2) == [Self.finish(503, .none, .release, .endResponse)])
    }

    @Test func aPerTryTimeoutAbandonsTheTryAndFinallyAnswers504() {
        let retry = HTTPRoute.Retry(attempts: 1, perTryTimeout: .milliseconds(200), retryOn: ["reset"])
        var exchange = HTTPExchange(policy: .init(retry: retry, perTryTimeout: .seconds(5)))
        #expect(exchange.start() == [.send(attempt: 1, avoiding: [], timeout: .milliseconds(200))])
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(
            exchange.perTryTimedOut(attempt: 1)
                == [.abandonUpstream, .send(attempt: 2, avoiding: [Self.a], timeout: .milliseconds(200))]
        )
        #expect(exchange.perTryTimedOut(attempt: 1).isEmpty, "a stale timer does nothing")
        exchange.chose(attempt: 2, endpoint: Self.a)
        #expect(
            exchange.perTryTimedOut(attempt: 2)
                == [
                    .abandonUpstream,
                    Self.finish(
                        504,
                        .upstreamRequestTimeout,
                        .close,
                        Self.local(.gatewayTimeout, "per-try timeout\n", .upstreamRequestTimeout)
                    ),
                ]
        )
    }

    @Test func theRoutesBackendTimeoutIsThePerTryTimeoutWithoutARetryPolicy() {
        var exchange = HTTPExchange(policy: .init(perTryTimeout: .seconds(1)))
        #expect(exchange.start() == [.send(attempt: 1, avoiding: [], timeout: .seconds(1))])
        exchange.chose(attempt: 1, endpoint: Self.a)
        #expect(
            exchange.perTryTimedOut(attempt: 1).last
                == Self.finish(
                    504,
                    .upstreamRequestTimeout,
                    .close,
                    Self.local(.gatewayTimeout, "per-try timeout\n", .upstreamRequestTimeout)
                )
        )
    }

    @Test func aStalePooledConnectionIsResentWithoutCountingARetry() {
        var exchange = HTTPExchange(policy: .init())
        _ = exchange.start()
        exchange.chose(attempt: 1, endpoint: Self.a)
        exchange.sentOnReusedConnection(attempt: 1)
        #expect(
            exchange.failed(attempt: 1, .reset("closed while idle")) == [
                .send(attempt: 2, avoiding: [Self.a], timeout: nil)
            ]
        )
        exchange.chose(attempt: 2, endpoint: Self.a)
        // On a fresh connection a reset is a real failure, and there is no retry.
        #expect(exchange.failed(attempt: 2, .reset("reset")).count == 1)
        #expect(exchange.isFinished && exchange.flag == .upstreamReset && exchange.status == 503)
    }

    @Test func theRequestTimeoutAnswers504BeforeTheResponseAndResetsAfterIt() {
        var waiting = HTTPExchange(policy: .init(requestTimeout: .seconds(1)))
        _ = waiting.start()
        #expect(
            waiting.requestTimedOut()
                == [
                    Self.finish(
                        504,
                        .upstreamRequestTimeout,
                        .close,
                        Self.local(.gatewayTimeout, "upstream request timeout\n", .upstreamRequestTimeout)
                    )
                ]
        )
        var streaming = HTTPExchange(policy: .init(requestTimeout: .seconds(1)))
        _ = streaming.start()
        _ = streaming.responseHead(attempt: 1, status: 200)
        #expect(streaming.requestTimedOut() == [Self.finish(200, .upstreamRequestTimeout, .close, .reset)])
    }

    @Test func aResetAfterTheResponseStartedResetsTheClient() {
        var exchange = HTTPExchange(policy: .init(retry: .init(attempts: 3)))
        _ = exchange.start()
        _ = exchange.responseHead(attempt: 1, status: 200)
        #expect(exchange.failed(attempt: 1, .reset("peer reset")) == [Self.finish(200, .upstreamReset, .close, .reset)])
    }

    @Test func noHealthyEndpointIsAnswered503WithoutARetry() {
        var exchange = HTTPExchange(policy: .init(retry: .init(attempts: 3, retryOn: ["5xx"])))
        _ = exchange.start()
        #expect(
            exchange.failed(attempt: 1, .noEndpoint("no healthy endpoint for service demo/server port 80"))
                == [
                    Self.finish(
                        503,
                        .noHealthyUpstream,
                        .close,
                        Self.local(
                            .serviceUnavailable,
                            "no healthy endpoint for service demo/server port 80\n",
                            .noHealthyUpstream
                        )
                    )
                ]
        )
    }

    @Test func theClientGoingAwayEndsTheExchangeAsDC() {
        var exchange = HTTPExchange(policy: .init())
        _ = exchange.start()
        #expect(exchange.downstreamClosed() == [Self.finish(0, .downstreamTermination, .close, .none)])
        var committed = HTTPExchange(policy: .init())
        _ = committed.start()
        _ = committed.responseHead(attempt: 1, status: 206)
        #expect(committed.downstreamClosed() == [Self.finish(206, .downstreamTermination, .close, .none)])
    }

    @Test func faultsAbortOrDelayAndTheDelayIsReported() {
        var aborted = HTTPExchange(policy: .init(fault: .abort(status: 418)))
        #expect(
            aborted.start()
                == [
                    Self.finish(
                        418,
                        .faultAbort,
                        .close,
                        Self.local(.init(statusCode: 418), "fault filter abort", .faultAbort)
                    )
                ]
        )
        var delayed = HTTPExchange(policy: .init(fault: .delay(.milliseconds(300))))
        #expect(delayed.start() == [.delay(.milliseconds(300))])
        #expect(delayed.backoffElapsed().isEmpty, "only the delay's own event ends it")
        #expect(delayed.delayElapsed() == [.send(attempt: 1, avoiding: [], timeout: nil)])
        _ = delayed.responseHead(attempt: 1, status: 200)
        #expect(delayed.responseEnd(attempt: 1) == [Self.finish(200, .faultDelay, .release, .endResponse)])
    }

    @Test func faultDiceAreRolledWhenThePolicyIsMade() {
        var plan = ForwardPlan(
            unrouted: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"),
            to: .workload(Self.workload, port: 8080)
        )
        plan.fault = HTTPRoute.Fault(delay: .seconds(1), delayPercent: 50, abortStatus: 503, abortPercent: 10)
        #expect(plan.exchangePolicy { 5 }.fault == .abort(status: 503))
        #expect(plan.exchangePolicy { 40 }.fault == .delay(.seconds(1)))
        #expect(plan.exchangePolicy { 60 }.fault == nil)
    }

    static let workload = Workload(
        pod: Pod(metadata: ObjectMeta(name: "server", namespace: "demo"), podIPs: [IPAddress("10.244.2.2")!]),
        identity: .test("demo", "server"),
        enrollment: .enrolled(.namespaceLabel)
    )
}
