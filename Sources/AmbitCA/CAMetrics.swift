import Prometheus

/// The CA service's metrics: istiod's names for requests, issuances and failures (so existing dashboards
/// read them), and `ambit_ca_refusals_total{code}` with every refusal by its gRPC status.
struct CAMetrics: Sendable {
    private let requests: Counter
    private let issuances: Counter
    private let authenticationFailures: Counter
    private let parsingErrors: Counter
    private let registry: PrometheusCollectorRegistry

    static var refusals: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "ambit_ca_refusals",
            unitName: "total",
            helpText: "Certificate requests the CA refused, by gRPC status"
        )
    }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        requests = registry.makeCounter(
            descriptor: MetricNameDescriptor(metricName: "citadel_server_csr_count", helpText: "CSRs received")
        )
        issuances = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "citadel_server_success_cert_issuance_count",
                helpText: "Certificates issued"
            )
        )
        authenticationFailures = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "citadel_server_authentication_failure_count",
                helpText: "Requests whose caller could not be authenticated"
            )
        )
        parsingErrors = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "citadel_server_csr_parsing_err_count",
                helpText: "Requests whose CSR could not be used"
            )
        )
        for code in [
            CARefusal.Code.unauthenticated, .permissionDenied, .invalidArgument, .resourceExhausted, .unavailable,
            .internal,
        ] {
            _ = registry.makeCounter(descriptor: Self.refusals, labels: [("code", code.metricLabel)])
        }
    }

    /// `ambit_ca_token_authentications_total{answered_by}`: tokens the API server's TokenReview confirmed or
    /// refused (`api_server`), and those a recent review answered (`cache`).
    static func tokenReviews(registry: PrometheusCollectorRegistry) -> (apiServer: Counter, cache: Counter) {
        let descriptor = MetricNameDescriptor(
            metricName: "ambit_ca_token_authentications",
            unitName: "total",
            helpText: "Bearer tokens authenticated with TokenReview, by what answered: the API server or the cache"
        )
        return (
            registry.makeCounter(descriptor: descriptor, labels: [("answered_by", "api_server")]),
            registry.makeCounter(descriptor: descriptor, labels: [("answered_by", "cache")])
        )
    }

    func received() { requests.increment() }

    func issued() { issuances.increment() }

    func refused(_ code: CARefusal.Code) {
        registry.makeCounter(descriptor: Self.refusals, labels: [("code", code.metricLabel)]).increment()
        switch code {
        case .unauthenticated: authenticationFailures.increment()
        case .invalidArgument: parsingErrors.increment()
        default: break
        }
    }
}

extension CARefusal.Code {
    /// The gRPC status name: UNAUTHENTICATED, PERMISSION_DENIED, ...
    var metricLabel: String {
        switch self {
        case .unauthenticated: return "UNAUTHENTICATED"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .unavailable: return "UNAVAILABLE"
        case .internal: return "INTERNAL"
        }
    }
}
