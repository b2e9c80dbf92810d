import AmbitConfig
import AmbitModel
import FuzzSupport

/// The manifest decoder on arbitrary bytes, as a file dropped in the manifests directory or a
/// ConfigMap would give it: the UTF-8 check, YAML (documents, aliases, anchors), every kind Ambit
/// reads, then the snapshot the agents build from what decoded, and the mesh config decoder. An error
/// is the expected answer to most inputs; a crash, a hang (libFuzzer's -timeout) or a blow-up of
/// memory (-rss_limit_mb) is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzDriver.bytes(data, size)
    guard let text = try? ManifestDecoder.validatedText(bytes, file: "fuzz.yaml") else { return 0 }
    if let result = try? ManifestDecoder().decode(text, file: "fuzz.yaml") {
        let snapshot = ConfigSnapshot(objects: result.objects, options: ConfigOptions(), version: 1)
        for workload in snapshot.workloads(onNode: "node1") { _ = workload.identity.uri }
    }
    _ = try? MeshConfigDecoder.decode(text, file: "mesh.yaml")
    return 0
}

@_cdecl("FuzzManifest_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv, testOneInput)
}
