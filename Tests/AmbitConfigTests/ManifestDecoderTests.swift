import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

@Suite struct ManifestDecoderTests {
    let decoder = ManifestDecoder()

    @Test func decodesPodWithUpstreamFieldNames() throws {
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web-1
              namespace: shop
              uid: 1234-abcd
              labels: {app: web, "istio.io/dataplane-mode": none}
              annotations: {note: "x"}
            spec:
              nodeName: node-a
              serviceAccountName: web
              containers:
                - name: app
                  image: nginx
                  ports:
                    - {name: http, containerPort: 8080}
                    - {containerPort: 53, protocol: UDP}
            status:
              phase: Running
              podIP: 10.0.1.5
              podIPs: [{ip: 10.0.1.5}, {ip: "fd00::5"}]
              conditions: [{type: Ready, status: "False"}]
            """
        let result = try decoder.decode(yaml, file: "pod.yaml")
        guard case .pod(let pod) = try #require(result.objects.first) else {
            Issue.record("not a pod")
            return
        }
        #expect(pod.key == ObjectKey(.pod, namespace: "shop", name: "web-1"))
        #expect(pod.metadata.uid == "1234-abcd")
        #expect(pod.metadata.labels == ["app": "web", "istio.io/dataplane-mode": "none"])
        #expect(pod.nodeName == "node-a")
        #expect(pod.serviceAccountName == "web")
        #expect(
            pod.containerPorts == [
                ContainerPort(name: "http", containerPort: 8080), ContainerPort(containerPort: 53, transport: .udp),
            ]
        )
        #expect(pod.podIPs == [try IPAddress(parsing: "10.0.1.5"), try IPAddress(parsing: "fd00::5")])
        #expect(pod.phase == .running)
        #expect(pod.ready == false)
        #expect(!pod.isHealthy)
        #expect(pod.port(named: "http") == 8080)
    }

    @Test func appliesKubernetesDefaults() throws {
        let result = try decoder.decode("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
        guard case .pod(let pod) = result.objects[0] else { return }
        #expect(pod.metadata.namespace == "default")
        #expect(pod.serviceAccountName == "default")
        #expect(pod.podIPs.isEmpty)
        #expect(!pod.isHealthy)
    }

    @Test func decodesServiceWithNamedAndNumericTargetPorts() throws {
        let yaml = """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec:
              clusterIP: 10.96.0.10
              clusterIPs: [10.96.0.10, "fd00:96::10"]
              selector: {app: web}
              ports:
                - {name: http, port: 80, targetPort: http}
                - {port: 443, targetPort: 8443, appProtocol: https}
                - {port: 9000}
            """
        guard case .service(let service) = try decoder.decode(yaml).objects[0] else {
            Issue.record("not a service")
            return
        }
        #expect(service.clusterIPs.map(\.description) == ["10.96.0.10", "fd00:96::10"])
        #expect(service.selector == LabelSelector(matchLabels: ["app": "web"]))
        #expect(
            service.ports == [
                ServicePort(name: "http", port: 80, targetPort: .name("http")),
                ServicePort(port: 443, targetPort: .number(8443), appProtocol: "https"),
                ServicePort(port: 9000, targetPort: .number(9000)),
            ]
        )
        #expect(service.hostname() == "web.shop.svc.cluster.local")
    }

    @Test func headlessServiceHasNoVIP() throws {
        let yaml =
            "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None, ports: [{port: 5432}]}\n"
        guard case .service(let service) = try decoder.decode(yaml).objects[0] else { return }
        #expect(service.headless)
        #expect(service.clusterIPs.isEmpty)
    }

    @Test func decodesAuthorizationPolicy() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata:
              name: p
              namespace: shop
              annotations: {istio.io/dry-run: "true"}
            spec:
              selector: {matchLabels: {app: web}}
              action: DENY
              rules:
                - from:
                    - source:
                        principals: ["cluster.local/ns/a/sa/b", "*/sa/admin"]
                        notNamespaces: ["kube-*"]
                        ipBlocks: ["10.0.0.0/8", "192.168.1.1"]
                        serviceAccounts: []
                    - source: {requestPrincipals: ["*"]}
                  to:
                    - operation: {ports: ["8080", 9090], methods: [GET]}
                  when:
                    - {key: source.ip, values: ["10.1.0.0/16"]}
                    - {key: "request.headers[x-user]", notValues: ["bob"]}
            """
        guard case .authorizationPolicy(let policy) = try decoder.decode(yaml).objects[0] else {
            Issue.record("not a policy")
            return
        }
        #expect(policy.dryRun)
        #expect(policy.action == .deny)
        #expect(policy.selector?.matchLabels == ["app": "web"])
        let rule = try #require(policy.rules.first)
        #expect(rule.from[0].principals == [.exact("cluster.local/ns/a/sa/b"), .suffix("/sa/admin")])
        #expect(rule.from[0].notNamespaces == [.prefix("kube-")])
        #expect(rule.from[0].ipBlocks.map(\.description) == ["10.0.0.0/8", "192.168.1.1/32"])
        #expect(rule.from[1].l7Fields == ["requestPrincipals"])
        #expect(rule.to[0].ports == [8080, 9090])
        #expect(rule.to[0].l7Fields == ["methods"])
        #expect(rule.when.map(\.key) == [.sourceIP, .requestHeader("x-user")])
    }

    @Test func serviceAccountsDefaultToThePolicyNamespace() throws {
        let yaml = """
            apiVersion: security.istio.io/v1beta1
            kind: AuthorizationPolicy
            metadata: {name: p, namespace: shop}
            spec:
              rules: [{from: [{source: {serviceAccounts: ["web", "other/api"]}}]}]
            """
        guard case .authorizationPolicy(let policy) = try decoder.decode(yaml).objects[0] else { return }
        #expect(policy.rules[0].from[0].serviceAccounts.map(\.description) == ["shop/web", "other/api"])
        #expect(policy.action == .allow)
    }

    @Test func decodesPeerAuthenticationGatewayAndRoute() throws {
        let yaml = """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: strict, namespace: shop}
            spec:
              selector: {matchLabels: {app: web}}
              mtls: {mode: STRICT}
              portLevelMtls: {"8081": {mode: PERMISSIVE}}
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: {name: waypoint, namespace: shop, labels: {istio.io/waypoint-for: all}}
            spec:
              gatewayClassName: istio-waypoint
              listeners: [{name: mesh, port: 15008, protocol: HBONE}]
            status:
              addresses: [{type: IPAddress, value: 10.96.0.99}, {type: Hostname, value: waypoint.shop}]
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: {name: canary, namespace: shop}
            spec:
              parentRefs: [{group: "", kind: Service, name: web, port: 80}]
              rules:
                - matches:
                    - path: {type: PathPrefix, value: /api}
                      headers: [{name: x-canary, value: "1"}]
                      method: GET
                  filters:
                    - type: RequestHeaderModifier
                      requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-c]}
                  backendRefs:
                    - {name: web-v1, port: 80, weight: 90}
                    - {name: web-v2, port: 80, weight: 10}
                  timeouts: {request: 1m30s, backendRequest: 500ms}
            """
        let objects = try decoder.decode(yaml).objects
        #expect(objects.count == 3)
        guard case .peerAuthentication(let peer) = objects[0], case .gateway(let gateway) = objects[1],
            case .httpRoute(let route) = objects[2]
        else {
            Issue.record("unexpected kinds \(objects.map(\.key))")
            return
        }
        #expect(peer.mode == .strict)
        #expect(peer.portLevelModes == [8081: .permissive])
        #expect(gateway.isWaypoint)
        #expect(gateway.addresses.map(\.description) == ["10.96.0.99"])
        #expect(route.parentRefs[0].isService)
        #expect(route.rules[0].matches[0].path == HTTPRoute.PathMatch(.pathPrefix, "/api"))
        #expect(route.rules[0].matches[0].method == "GET")
        #expect(route.rules[0].backendRefs.map(\.weight) == [90, 10])
        #expect(
            route.rules[0].timeouts == HTTPRoute.Timeouts(request: .seconds(90), backendRequest: .milliseconds(500))
        )
        #expect(
            route.rules[0].filters == [
                .requestHeaderModifier(
                    HTTPRoute.HeaderModifier(set: [HTTPRoute.Header(name: "x-a", value: "b")], remove: ["x-c"])
                )
            ]
        )
    }

    @Test func readsListsAndSkipsUnknownKinds() throws {
        let yaml = """
            apiVersion: v1
            kind: List
            items:
              - {apiVersion: v1, kind: Namespace, metadata: {name: a}}
              - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
            ---
            ---
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: ingress}
            spec: {selector: {istio: ingressgateway}}
            """
        let result = try decoder.decode(yaml, file: "list.yaml")
        #expect(result.objects.map(\.key) == [ObjectKey(.namespace, namespace: "", name: "a")])
        #expect(
            result.warnings.map(\.description) == [
                "list.yaml:5: skipping ConfigMap (v1): not a kind Ambit uses",
                "list.yaml:8: skipping Gateway (networking.istio.io/v1): not a kind Ambit uses",
            ]
        )
    }

    /// Each malformed manifest gets an error naming file, line, object and field.
    @Test(arguments: [
        ("kind: Pod\nmetadata: {name: p}\n", "bad.yaml:1: document 1: apiVersion: is required"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p\n", "bad.yaml:4: invalid YAML:"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n", "bad.yaml:3: document 1: metadata.name: is required"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\n",
            "bad.yaml:3: Pod default/My_Pod: metadata.name: \"My_Pod\" is not a valid Pod name"
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: http\n",
            "bad.yaml:6: Service default/web: spec.ports[0].port: expected an integer, got a string (\"http\")"
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - port: 70000\n",
            "bad.yaml:6: Service default/web: spec.ports[0].port: 70000 is out of range 1...65535"
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.0.0.256}\n",
            "bad.yaml:4: Service default/web: spec.clusterIP: \"10.0.0.256\" is not a valid IPv4 or IPv6 address"
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, targetPort: Web_Port}]}\n",
            "bad.yaml:4: Service default/web: spec.ports[0].targetPort: \"Web_Port\" is neither a port number in 1...65535 nor a valid port name"
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    version: 1\n",
            "bad.yaml:6: Pod default/p: metadata.labels.version: expected a string, got an integer (1); quote it to make it a string"
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIP: [1]}\n",
            "bad.yaml:4: Pod default/p: status.podIP: expected a string, got a list"
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nselector: {}\n",
            "bad.yaml:4: Pod default/p: selector: unknown field \"selector\""
        ),
        (
            "apiVersion: security.istio.io/v2\nkind: AuthorizationPolicy\nmetadata: {name: p}\n",
            "bad.yaml:1: document 1: apiVersion: \"security.istio.io/v2\" is not a supported version of AuthorizationPolicy"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: REJECT}\n",
            "bad.yaml:4: AuthorizationPolicy default/p: spec.action: unknown action \"REJECT\" (expected ALLOW, DENY, AUDIT or CUSTOM)"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - from:\n    - source: {principles: [a]}\n",
            "bad.yaml:7: AuthorizationPolicy default/p: spec.rules[0].from[0].source.principles: unknown field \"principles\""
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/33]}\n",
            "bad.yaml:7: AuthorizationPolicy default/p: spec.rules[0].from[0].source.ipBlocks[0]: invalid CIDR \"10.0.0.0/33\": prefix length 33 is larger than 32"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - to:\n    - operation: {ports: [\"80-90\"]}\n",
            "bad.yaml:7: AuthorizationPolicy default/p: spec.rules[0].to[0].operation.ports[0]: \"80-90\" is not a port number in 1...65535 (ranges are not supported)"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - when: [{key: source.port, values: [\"1\"]}]\n",
            "bad.yaml:6: AuthorizationPolicy default/p: spec.rules[0].when[0].key: unknown condition key \"source.port\""
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - from:\n    - source: {principals: [\"a*b\"]}\n",
            "bad.yaml:7: AuthorizationPolicy default/p: spec.rules[0].from[0].source.principals[0]: \"a*b\": '*' is only allowed at the start or the end"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: DENY}\n",
            "bad.yaml:4: AuthorizationPolicy default/p: spec: a DENY policy needs at least one rule"
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  annotations: {istio.io/dry-run: yes-please}\n",
            "bad.yaml:5: AuthorizationPolicy default/p: metadata.annotations[\"istio.io/dry-run\"]: \"yes-please\" must be \"true\" or \"false\""
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: STRICTER}}\n",
            "bad.yaml:4: PeerAuthentication default/p: spec.mtls.mode: unknown mode \"STRICTER\""
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - matches: [{path: {type: RegularExpression, value: \"(\"}}]\n",
            "bad.yaml:6: HTTPRoute default/r: spec.rules[0].matches[0].path.value: invalid regular expression \"(\""
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n  - timeouts: {request: 10 seconds}\n",
            "bad.yaml:6: HTTPRoute default/r: spec.rules[0].timeouts.request: \"10 seconds\" is not a duration"
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, name: b}\n",
            "bad.yaml:3: invalid YAML: duplicate key \"name\" in a mapping"
        ),
    ])
    func reportsWhereAndWhy(yaml: String, expected: String) {
        do {
            let result = try decoder.decode(yaml, file: "bad.yaml")
            Issue.record("expected an error, decoded \(result.objects.map(\.key))")
        } catch {
            #expect(error.description.hasPrefix(expected), "got: \(error.description)")
        }
    }

    @Test func laterDocumentsNameTheirIndex() {
        let yaml = Manifests.join([Manifests.namespace("a"), "apiVersion: v1\nkind: Pod\nmetadata: {}"])
        #expect(throws: ManifestError.self) { try decoder.decode(yaml, file: "f.yaml") }
        do {
            _ = try decoder.decode(yaml, file: "f.yaml")
        } catch {
            #expect(error.object == "document 2")
            #expect(error.field == "metadata.name")
        }
    }
}
