import AmbitConfig
import AmbitModel
import AmbitPolicy
import Testing

/// CUSTOM AuthorizationPolicies: checked by a waypoint's external authorizer, refused where nothing
/// can call one (the node agent), never skipped.
@Suite struct CustomPolicyTests {
    static let policies = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ext, namespace: shop}
        spec:
          selector: {matchLabels: {app: web}}
          action: CUSTOM
          provider: {name: opa}
          rules: [{to: [{operation: {ports: ["8080"], paths: ["/admin/*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: at-waypoint, namespace: shop}
        spec:
          targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
          action: CUSTOM
          provider: {name: opa}
          rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: also, namespace: shop}
        spec:
          targetRefs: [{kind: Service, name: api}]
          action: CUSTOM
          provider: {name: audit-svc}
          rules: [{}]
        """

    static func decoded() throws -> [AuthorizationPolicy] {
        try ManifestDecoder().decode(policies, file: "custom.yaml").objects.compactMap {
            if case .authorizationPolicy(let policy) = $0 { return policy }
            return nil
        }
    }

    static func request(port: UInt16, path: String? = nil, labels: [String: String] = ["app": "web"])
        -> AuthorizationRequest
    {
        var request = AuthorizationRequest(
            destinationNamespace: "shop",
            destinationLabels: labels,
            sourceIdentity: try? SpiffeID(namespace: "shop", serviceAccount: "client"),
            sourceAddress: IPAddress("10.0.0.1")!,
            destinationAddress: IPAddress("10.0.0.2")!,
            destinationPort: port
        )
        if let path { request.http = HTTPRequestAttributes(method: "GET", path: path, host: "web", headers: [:]) }
        return request
    }

    @Test func theNodeAgentRefusesWhatACustomPolicySelectsInsteadOfSkippingIt() throws {
        let engine = AuthorizationEngine(policies: try Self.decoded())
        // The rule's L4 part (port 8080) matches; its path cannot be checked at L4: refused, failing closed.
        let refused = engine.evaluate(Self.request(port: 8080))
        #expect(!refused.isAllowed)
        #expect(refused.policy?.namespacedName == "shop/ext")
        guard case .customWithoutAuthorizer(0, provider: "opa") = refused.basis else {
            Issue.record("\(refused)")
            return
        }
        #expect(refused.reason.contains("needs the external authorizer \"opa\""), "\(refused.reason)")
        // Outside the rule's L4 part, and for pods it does not select: nothing to check.
        #expect(engine.evaluate(Self.request(port: 9090)).isAllowed)
        #expect(engine.evaluate(Self.request(port: 8080, labels: ["app": "db"])).isAllowed)
        #expect(engine.warnings.contains { $0.hasPrefix("AuthorizationPolicy shop/ext: a CUSTOM policy selecting") })
    }

    @Test func aWaypointNamesTheAuthorizersWhoseRulesMatchTheRequest() throws {
        let gateway = ObjectKey(.gateway, namespace: "shop", name: "waypoint")
        let api = ObjectKey(.service, namespace: "shop", name: "api")
        let authorization = WaypointAuthorization(policies: try Self.decoded(), gateway: gateway)
        #expect(
            authorization.externalAuthorizers(for: Self.request(port: 80, path: "/admin/x"), service: nil) == ["opa"]
        )
        #expect(authorization.externalAuthorizers(for: Self.request(port: 80, path: "/home"), service: nil).isEmpty)
        #expect(
            authorization.externalAuthorizers(for: Self.request(port: 80, path: "/admin/x"), service: api)
                == ["opa", "audit-svc"]
        )
        #expect(authorization.namedAuthorizers == ["opa", "audit-svc"])
        // CUSTOM policies are not DENY or ALLOW: with nothing else bound, the request is allowed after the check.
        #expect(authorization.evaluate(Self.request(port: 80, path: "/admin/x"), service: api).isAllowed)
    }

    @Test func meshConfigReadsExtAuthzProvidersFromTheFileOrTheConfigMap() throws {
        let mesh = """
            defaultConfig: {discoveryAddress: istiod.istio-system.svc:15012}
            extensionProviders:
            - name: opa
              envoyExtAuthzGrpc: {service: opa.shop.svc.cluster.local, port: 9191, timeout: 0.5s, statusOnError: "503"}
            - name: http-authz
              envoyExtAuthzHttp: {service: authz.shop.svc.cluster.local, port: 8000}
            - name: prom
              prometheus: {}
            """
        let config = try MeshConfigDecoder.decode(mesh, file: "mesh.yaml")
        #expect(
            config.extensionProviders["opa"]?.kind
                == .extAuthzGrpc(
                    .init(
                        service: "opa.shop.svc.cluster.local",
                        port: 9191,
                        timeout: .milliseconds(500),
                        statusOnError: 503
                    )
                )
        )
        guard case .unsupported(let why)? = config.extensionProviders["http-authz"]?.kind else {
            Issue.record("an HTTP ext_authz provider must be recorded as unusable")
            return
        }
        #expect(why.contains("envoyExtAuthzHttp"))
        #expect(config.extensionProviders["prom"] == nil)
        #expect(config.warnings.contains { $0.contains("\"prom\" (prometheus) is not an authorizer") })

        let configMap = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: istio, namespace: istio-system}
            data:
              mesh: |-
            \(mesh.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """
        #expect(try MeshConfigDecoder.decode(configMap, file: "istio.yaml") == config)

        #expect(throws: ManifestError.self) {
            try MeshConfigDecoder.decode(
                "extensionProviders: [{name: x, envoyExtAuthzGrpc: {service: s, port: 70000}}]",
                file: "bad.yaml"
            )
        }
        do {
            _ = try MeshConfigDecoder.decode(
                "extensionProviders: [{name: x, envoyExtAuthzGrpc: {service: s, port: 9000, failopen: true}}]",
                file: "bad.yaml"
            )
            Issue.record("a misspelled field must be refused")
        } catch {
            #expect(
                "\(error)".hasPrefix("bad.yaml:1: extensionProviders[0].envoyExtAuthzGrpc.failopen: unknown field"),
                "\(error)"
            )
        }
    }
}
