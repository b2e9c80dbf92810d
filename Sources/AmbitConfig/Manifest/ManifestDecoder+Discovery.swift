import AmbitModel

// EndpointSlices (`discovery.k8s.io/v1`), read as the endpoint source of Services without a selector.
extension ManifestDecoder {
    func decodeEndpointSlice(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> EndpointSlice {
        let typeValue = try document.required("addressType")
        let addressType = try typeValue.parsed { text in
            guard let type = EndpointSlice.AddressType(rawValue: text) else {
                throw ValueError("\"\(text)\" is not an address type (IPv4, IPv6, FQDN)")
            }
            return type
        }
        var slice = EndpointSlice(metadata: metadata, addressType: addressType)
        slice.endpoints =
            try document["endpoints"]?.list { (value) throws(FieldError) in
                let mapping = try value.mapping()
                var endpoint = EndpointSlice.Endpoint(addresses: [])
                if addressType != .fqdn {
                    endpoint.addresses = try mapping.required("addresses").list { (address) throws(FieldError) in
                        let parsed = try address.parsed { try IPAddress(parsing: $0) }
                        guard parsed.isIPv4 == (addressType == .ipv4) else {
                            throw address.error("\(parsed) is not an \(addressType.rawValue) address")
                        }
                        return parsed
                    }
                }
                if let conditions = try mapping["conditions"]?.mapping() {
                    endpoint.ready = try conditions["ready"]?.bool()
                    endpoint.serving = try conditions["serving"]?.bool()
                    endpoint.terminating = try conditions["terminating"]?.bool()
                }
                if let target = try mapping["targetRef"]?.mapping(), try target["kind"]?.string() == "Pod" {
                    endpoint.pod = ObjectKey(
                        .pod,
                        namespace: try target["namespace"]?.nonEmptyString() ?? metadata.namespace,
                        name: try target.required("name").nonEmptyString()
                    )
                }
                endpoint.nodeName = try mapping["nodeName"]?.nonEmptyString()
                return endpoint
            } ?? []
        slice.ports =
            try document["ports"]?.list { (value) throws(FieldError) in
                let mapping = try value.mapping()
                return EndpointSlice.Port(
                    name: try mapping["name"]?.string(),
                    port: try mapping["port"]?.port(),
                    transport: try transport(mapping["protocol"]),
                    appProtocol: try mapping["appProtocol"]?.string()
                )
            } ?? []
        return slice
    }
}
