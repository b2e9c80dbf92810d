import AmbitCapture
import Testing

@Suite struct SystemLibrariesTests {
    @Test func libbpfLinks() {
        // Debian 12 ships libbpf 1.1; the capture backend needs the 1.x API.
        #expect(SystemLibraries.libbpfVersion.hasPrefix("1."))
    }

    @Test func libnftnlAndLibmnlLink() {
        #expect(SystemLibraries.libnftnlUsable)
        #expect(SystemLibraries.libmnlUsable)
    }
}
