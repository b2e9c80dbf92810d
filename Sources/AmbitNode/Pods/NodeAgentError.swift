import AmbitModel
import Glibc
import NIOCore

/// Failures of the agent that end one connection or one pod's capture, with what went wrong.
enum NodeAgentError: Error, CustomStringConvertible {
    case unknownSourcePod(String)
    case noNetworkNamespace(String)
    case noHealthyEndpoint(String)
    case capture(pod: String, reason: String)
    case ebpfUnavailable(String)

    var description: String {
        switch self {
        case .unknownSourcePod(let pod): "no workload known for captured pod \(pod); closing (fail closed)"
        case .noNetworkNamespace(let address): "no captured pod owns \(address)"
        case .noHealthyEndpoint(let service): "service \(service) has no healthy endpoint"
        case .capture(let pod, let reason): "cannot capture pod \(pod): \(reason)"
        case .ebpfUnavailable(let reason):
            "--capture ebpf cannot run here: \(reason) (use --capture nftables, or add --capture-fallback)"
        }
    }
}
