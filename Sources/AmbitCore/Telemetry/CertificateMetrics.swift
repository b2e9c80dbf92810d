public import AmbitModel
import Foundation
public import Prometheus

/// Certificate expiry and renewal outcomes, per identity.
public final class CertificateMetrics: Sendable {
    public static let expiry = "ambit_certificate_expiry_timestamp_seconds"
    public static let renewals = "ambit_certificate_renewals_total"

    private let registry: PrometheusCollectorRegistry

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func issued(_ certificate: WorkloadCertificate) {
        let identity = certificate.identity.uri
        registry.makeGauge(
            name: Self.expiry,
            labels: [("identity", identity)],
            help: "Unix time at which the workload certificate expires"
        ).set(certificate.expiry.timeIntervalSince1970)
        registry.makeCounter(
            name: Self.renewals,
            labels: [("identity", identity), ("result", "success")],
            help: "Certificate requests by outcome"
        ).increment()
    }

    func failed(_ identity: SpiffeID) {
        registry.makeCounter(
            name: Self.renewals,
            labels: [("identity", identity.uri), ("result", "failure")],
            help: "Certificate requests by outcome"
        ).increment()
    }

    func remove(_ identity: SpiffeID) {
        registry.unregisterGauge(
            registry.makeGauge(
                name: Self.expiry,
                labels: [("identity", identity.uri)],
                help: "Unix time at which the workload certificate expires"
            )
        )
    }
}
