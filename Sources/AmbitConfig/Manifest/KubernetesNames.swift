import AmbitModel

/// Kubernetes' naming rules, checked when reading manifests because names flow into SPIFFE IDs,
/// host names and metric labels.
public enum KubernetesNames {
    /// RFC 1123 label: at most 63 lower-case alphanumerics or '-', starting and ending alphanumeric.
    public static func isDNSLabel(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 63, isLowerAlnum(bytes.first!), isLowerAlnum(bytes.last!) else {
            return false
        }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
    public static func isDNSSubdomain(_ text: String) -> Bool {
        text.utf8.count <= 253
            && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// IANA service name, as used for named ports: up to 15 lower-case alphanumerics or '-',
    /// at least one letter, no leading, trailing or double '-'.
    static func isPortName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-"),
            !text.contains("--"), bytes.contains(where: { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") })
        else { return false }
        return bytes.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    static func validateNamespaceName(_ name: String, at value: YAMLValue) throws(FieldError) {
        guard isDNSLabel(name) else {
            throw value.error(
                "\"\(name)\" is not a valid namespace name (lower-case letters, digits and '-', at most 63)"
            )
        }
    }

    /// Namespaces and Services are DNS labels (they become parts of host names); other objects
    /// are DNS subdomains.
    static func validateObjectName(_ name: String, kind: ResourceKind, at value: YAMLValue) throws(FieldError) {
        let labelOnly = kind == .namespace || kind == .service
        guard labelOnly ? isDNSLabel(name) : isDNSSubdomain(name) else {
            let rule = labelOnly ? "a DNS label: at most 63 of a-z, 0-9, '-'" : "a DNS subdomain: a-z, 0-9, '-', '.'"
            throw value.error("\"\(name)\" is not a valid \(kind) name (must be \(rule))")
        }
    }

    /// Label keys are `[prefix/]name`; names and values are at most 63 characters of
    /// alphanumerics, '-', '_' and '.', starting and ending alphanumeric (values may be empty).
    static func validateLabel(key: String, value: String, at node: YAMLValue) throws(FieldError) {
        var name = Substring(key)
        if let slash = key.firstIndex(of: "/") {
            let prefix = String(key[..<slash])
            guard isDNSSubdomain(prefix) else {
                throw node.error("label key \"\(key)\" has an invalid prefix \"\(prefix)\"")
            }
            name = key[key.index(after: slash)...]
        }
        guard !name.isEmpty, isLabelValue(String(name)) else {
            throw node.error(
                "label key \"\(key)\" is not valid (name part: at most 63 of a-z, A-Z, 0-9, '-', '_', '.')"
            )
        }
        guard value.isEmpty || isLabelValue(value) else {
            throw node.error(
                "label value \"\(value)\" is not valid (at most 63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both ends)"
            )
        }
    }

    private static func isLabelValue(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 63, isAlnum(bytes.first!), isAlnum(bytes.last!) else { return false }
        return bytes.allSatisfy {
            isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
        }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    private static func isAlnum(_ byte: UInt8) -> Bool {
        isLowerAlnum(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }
}
