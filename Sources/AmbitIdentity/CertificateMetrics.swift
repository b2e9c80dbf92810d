import AmbitModel
import FoundationEssentials
public import Prometheus

/// Certificate expiry and renewal outcomes, per identity.
public final class CertificateMetrics: Sendable {
    static var expiry: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "ambit_certificate_expiry_timestamp",
            unitName: "seconds",
            helpText: "Unix time at which the workload certificate expires"
        )
    }
    static var renewals: MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: "ambit_certificate_renewals",
            unitName: "total",
            helpText: "Certificate requests by outcome"
        )
    }

    private let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func issued(_ certificate: WorkloadCertificate) {
        let identity = certificate.identity.uri
        registry.makeGauge(descriptor: Self.expiry, labels: [("identity", identity)])
            .set(certificate.expiry.timeIntervalSince1970)
        registry.makeCounter(descriptor: Self.renewals, labels: [("identity", identity), ("result", "success")])
            .increment()
    }

    func failed(_ identity: SpiffeID) {
        registry.makeCounter(descriptor: Self.renewals, labels: [("identity", identity.uri), ("result", "failure")])
            .increment()
    }

    func remove(_ identity: SpiffeID) {
        registry.unregisterGauge(registry.makeGauge(descriptor: Self.expiry, labels: [("identity", identity.uri)]))
    }
}
