import AmbitConfig
import AmbitModel
import Testing

/// Istio VirtualService HTTP routes read into the HTTPRoute rule model, and the errors for what Ambit cannot honour.
@Suite struct VirtualServiceDecoderTests {
    static func decode(_ yaml: String) throws -> VirtualService {
        let result = try ManifestDecoder().decode(yaml, file: "vs.yaml")
        guard case .virtualService(let service) = try #require(result.objects.first) else {
            Issue.record("not a VirtualService")
            throw CancellationError()
        }
        return service
    }

    @Test func translatesMatchesDestinationsAndFilters() throws {
        let service = try Self.decode(
            """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews, namespace: shop}
            spec:
              hosts: [reviews, reviews.shop.svc.cluster.local]
              http:
                - name: canary
                  match:
                    - uri: {prefix: /api}
                      headers: {X-User: {exact: tester}, x-tier: {prefix: "gold."}}
                      queryParams: {v: {regex: "[0-9]+"}}
                      method: {exact: post}
                  rewrite: {uri: /v2, authority: reviews.internal}
                  headers:
                    request: {set: {x-canary: "1"}, remove: [x-debug]}
                    response: {add: {x-served-by: canary}}
                  route:
                    - destination: {host: reviews-v2, port: {number: 9080}}
                      weight: 20
                      headers: {response: {set: {x-version: v2}}}
                    - destination: {host: reviews-v1.shop.svc.cluster.local}
                      weight: 80
                  timeout: 1.5s
                  retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}
                  fault: {delay: {fixedDelay: 0.1s, percentage: {value: 10}}}
                  mirror: {host: reviews-shadow}
                  mirrorPercentage: {value: 25}
                - match: [{uri: {exact: /old}}]
                  redirect: {uri: /new, authority: shop.example, redirectCode: 308}
                - route: [{destination: {host: reviews-v1}}]
                  timeout: 0s
                  retries: {attempts: 1, perTryTimeout: 0s}
            """
        )
        #expect(service.hosts == ["reviews", "reviews.shop.svc.cluster.local"])
        #expect(service.appliesToMesh)
        #expect(service.http.count == 3)
        let canary = service.http[0]
        #expect(canary.name == "canary")
        let match = try #require(canary.matches.first)
        #expect(match.path == HTTPRoute.PathMatch(.stringPrefix, "/api"))
        #expect(
            match.headers == [
                HTTPRoute.ValueMatch(.exact, name: "x-user", value: "tester"),
                HTTPRoute.ValueMatch(.regularExpression, name: "x-tier", value: #"gold\..*"#),
            ]
        )
        #expect(match.queryParams == [HTTPRoute.ValueMatch(.regularExpression, name: "v", value: "[0-9]+")])
        #expect(match.method == "post")  // as written: Istio's exact match is case-sensitive
        #expect(
            canary.filters == [
                .requestHeaderModifier(
                    HTTPRoute.HeaderModifier(set: [HTTPRoute.Header(name: "x-canary", value: "1")], remove: ["x-debug"])
                ),
                .responseHeaderModifier(
                    HTTPRoute.HeaderModifier(add: [HTTPRoute.Header(name: "x-served-by", value: "canary")])
                ),
                .urlRewrite(HTTPRoute.Rewrite(hostname: "reviews.internal", path: .virtualServiceURI("/v2"))),
                .requestMirror(
                    HTTPRoute.Mirror(
                        backend: HTTPRoute.BackendObjectReference(
                            group: "",
                            kind: "Service",
                            name: "reviews-shadow",
                            namespace: "shop",
                            port: nil
                        ),
                        percent: 25
                    )
                ),
            ]
        )
        #expect(canary.backendRefs.map(\.backend.name) == ["reviews-v2", "reviews-v1"])
        #expect(canary.backendRefs.map(\.backend.port) == [9080, nil])
        #expect(canary.backendRefs.map(\.backend.namespace) == ["shop", "shop"])
        #expect(canary.backendRefs.map(\.weight) == [20, 80])
        #expect(
            canary.backendRefs[0].filters == [
                .responseHeaderModifier(
                    HTTPRoute.HeaderModifier(set: [HTTPRoute.Header(name: "x-version", value: "v2")])
                )
            ]
        )
        #expect(canary.timeouts?.request == .milliseconds(1500))
        #expect(canary.retry?.attempts == 3 && canary.retry?.perTryTimeout == .milliseconds(500))
        #expect(canary.retry?.retryOn == ["5xx", "connect-failure"])
        #expect(canary.fault?.delay == .milliseconds(100) && canary.fault?.delayPercent == 10)
        #expect(
            service.http[1].filters == [
                .requestRedirect(
                    HTTPRoute.Redirect(hostname: "shop.example", path: .replaceFullPath("/new"), statusCode: 308)
                )
            ]
        )
        #expect(service.http[2].matches.isEmpty && service.http[2].backendRefs.map(\.weight) == [100])
        // Zero means no timeout, as in Istio.
        #expect(service.http[2].timeouts == nil && service.http[2].retry?.perTryTimeout == nil)
    }

    @Test func hostsNameServicesOfThisCluster() throws {
        let service = VirtualService(metadata: ObjectMeta(name: "vs", namespace: "shop"), hosts: [])
        #expect(service.service(forHost: "reviews", clusterDomain: "cluster.local")! == ("shop", "reviews"))
        #expect(service.service(forHost: "reviews.books", clusterDomain: "cluster.local")! == ("books", "reviews"))
        #expect(service.service(forHost: "reviews.books.svc", clusterDomain: "cluster.local")! == ("books", "reviews"))
        #expect(
            service.service(forHost: "reviews.books.svc.cluster.local", clusterDomain: "cluster.local")!
                == ("books", "reviews")
        )
        #expect(service.service(forHost: "reviews.books.svc.other.local", clusterDomain: "cluster.local") == nil)
        #expect(service.service(forHost: "*.books.svc.cluster.local", clusterDomain: "cluster.local") == nil)
        #expect(service.service(forHost: "api.example.com", clusterDomain: "cluster.local") == nil)
        #expect(
            !VirtualService(metadata: service.metadata, hosts: [], gateways: ["istio-system/ingress"]).appliesToMesh
        )
        #expect(VirtualService(metadata: service.metadata, hosts: [], gateways: ["ingress", "mesh"]).appliesToMesh)
    }

    /// What Ambit cannot honour is an error naming the field, never dropped.
    @Test(arguments: [
        ("  tcp: [{route: [{destination: {host: db}}]}]\n", "spec.tcp: tcp routes are not supported"),
        (
            "  http: [{route: [{destination: {host: r, subset: v1}}]}]\n",
            "spec.http[0].route[0].destination.subset: subsets need a DestinationRule"
        ),
        (
            "  http: [{directResponse: {status: 503}}]\n",
            "spec.http[0].directResponse: directResponse is not supported by Ambit's waypoint"
        ),
        (
            "  http: [{match: [{sourceLabels: {app: a}}], route: [{destination: {host: r}}]}]\n",
            "spec.http[0].match[0].sourceLabels: sourceLabels is not supported"
        ),
        (
            "  http: [{match: [{uri: {prefix: api}}], route: [{destination: {host: r}}]}]\n",
            "spec.http[0].match[0].uri: uri \"api\" must start with \"/\""
        ),
        (
            "  http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: r}}]}]\n",
            "spec.http[0].match[0].uri: give exactly one of exact, prefix, regex"
        ),
        (
            "  http: [{match: [{uri: {regex: \"(\"}}], route: [{destination: {host: r}}]}]\n",
            "spec.http[0].match[0].uri.regex: invalid regular expression \"(\""
        ),
        (
            "  exportTo: [\".\"]\n  http: [{route: [{destination: {host: r}}]}]\n",
            "spec.exportTo: only [\"*\"] is supported"
        ),
        (
            "  http: [{redirect: {uri: /x}, route: [{destination: {host: r}}]}]\n",
            "spec.http[0].redirect: give either redirect or route, not both"
        ),
        (
            "  http: [{timeout: 10 seconds, route: [{destination: {host: r}}]}]\n",
            "spec.http[0].timeout: \"10 seconds\" is not a duration"
        ),
        ("  http: [{name: nothing}]\n", "spec.http[0]: an http route needs route or redirect"),
        (
            "  http: [{route: [{destination: {host: \"*.example.com\"}}]}]\n",
            "spec.http[0].route[0].destination.host: \"*.example.com\" is not a Kubernetes Service"
        ),
        (
            "  http: [{route: [{destination: {host: r}, wieght: 5}]}]\n",
            "spec.http[0].route[0].wieght: unknown field \"wieght\""
        ),
    ])
    func refusesWhatItCannotHonour(spec: String, expected: String) {
        let yaml =
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [r]\n"
            + spec
        do {
            let result = try ManifestDecoder().decode(yaml, file: "vs.yaml")
            Issue.record("expected an error, decoded \(result.objects.map(\.key))")
        } catch {
            #expect(error.description.contains("VirtualService default/vs: \(expected)"), "got: \(error.description)")
        }
    }
}
