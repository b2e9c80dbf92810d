import AmbitModel
import Foundation
import Testing

@testable import AmbitCapture

/// The eBPF backend's pure parts: map layouts (mirrors of bpf/ambit_capture.h), host checks. The programs
/// themselves run in the lab end-to-end tests (`--capture ebpf`).
@Suite struct EBPFCaptureTests {
    @Test func netnsConfigIsTheCStructByteForByte() {
        let bytes = EBPFMapLayout.netnsConfig(addresses: [IPAddress("10.244.2.7")!, IPAddress("fd00::7")!])
        #expect(bytes.count == 24)
        #expect(Array(bytes[0..<4]) == [0, 0, 0, 0])  // flags
        #expect(Array(bytes[4..<8]) == [10, 244, 2, 7])  // be32 pod_ip4
        #expect(Array(bytes[8..<24]) == [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])
        #expect(EBPFMapLayout.netnsConfig(addresses: [IPAddress("10.0.0.1")!])[8..<24].allSatisfy { $0 == 0 })
    }

    @Test func listenerKeyIsFamilyThenSixteenAddressBytes() {
        #expect(
            EBPFMapLayout.listenerKey(IPAddress("10.244.2.2")!)
                == [2, 0, 0, 0, 10, 244, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        )
        let v6 = EBPFMapLayout.listenerKey(IPAddress("fd00::2")!)
        #expect(v6.count == 20 && Array(v6[0..<4]) == [10, 0, 0, 0] && v6[4] == 0xfd && v6[19] == 2)
    }

    static let mountinfo = """
        23 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
        25 23 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
        30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
        31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
        32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,name=systemd
        46 25 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw,mode=700
        """

    @Test func findsTheCgroup2RootAndBPFFS() throws {
        #expect(EBPFCapture.cgroup2Mount(in: Self.mountinfo) == "/sys/fs/cgroup/unified")
        #expect(EBPFCapture.cgroup2Mount(in: "23 1 8:1 / / rw - ext4 /dev/sda1 rw") == nil)
        #expect(throws: CaptureError.self) { try EBPFCapture.findCgroup2Mount(mountinfo: "") }
        #expect(BPFFilesystem.isBPF("/sys/fs/bpf/ambit/node1", mountinfo: Self.mountinfo))
        #expect(BPFFilesystem.isBPF("/sys/fs/bpf", mountinfo: Self.mountinfo))
        #expect(!BPFFilesystem.isBPF("/sys/fs/bpfx", mountinfo: Self.mountinfo))
        #expect(!BPFFilesystem.isBPF("/tmp/pins", mountinfo: Self.mountinfo))
    }

    @Test func namesMissingCapabilities() {
        let bpf: UInt64 = 1 << 39
        let netAdmin: UInt64 = 1 << 12
        let sysAdmin: UInt64 = 1 << 21
        #expect(EBPFCapture.missingCapabilities(effective: bpf | netAdmin).isEmpty)
        #expect(EBPFCapture.missingCapabilities(effective: sysAdmin | netAdmin).isEmpty)
        #expect(EBPFCapture.missingCapabilities(effective: netAdmin) == ["CAP_BPF (or CAP_SYS_ADMIN)"])
        #expect(EBPFCapture.missingCapabilities(effective: 0) == ["CAP_BPF (or CAP_SYS_ADMIN)", "CAP_NET_ADMIN"])
    }

    @Test func theEmbeddedObjectIsABPFELF() throws {
        let object = try #require(Data(base64Encoded: EmbeddedBPFObject.captureBase64))
        // ELF, 64-bit, little-endian, e_machine EM_BPF (247).
        #expect(Array(object.prefix(6)) == [0x7f, 0x45, 0x4c, 0x46, 2, 1])
        #expect(object[18] == 247 && object[19] == 0)
    }
}
