import AmbitProcess
import Foundation
import Testing

/// Freed heap goes back to the kernel when the daemons' trimmer runs, not only at exit.
@Suite struct HeapTrimmerTests {
    static var residentKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    @Test func freedHeapIsReturnedOnlyAboveTheThreshold() {
        // 48 MiB in 32 KiB blocks, each followed by a small block that outlives it (as a connection's
        // buffers are interleaved with longer-lived objects), touched, then freed: the survivors keep
        // the allocator from shrinking its heap on its own.
        var blocks: [UnsafeMutableRawPointer] = []
        var survivors: [UnsafeMutableRawPointer] = []
        for _ in 0..<1536 {
            let block = malloc(32 << 10)!
            memset(block, 1, 32 << 10)
            blocks.append(block)
            survivors.append(malloc(64)!)
        }
        defer { for survivor in survivors { free(survivor) } }
        for block in blocks { free(block) }
        blocks = []
        #expect(HeapTrimmer.freeBytes >= 24 << 20)
        #expect(HeapTrimmer.trim(freeBytesAbove: Int.max) == nil)

        let before = Self.residentKiB
        #expect(HeapTrimmer.trim(freeBytesAbove: 16 << 20) != nil)
        let after = Self.residentKiB
        #expect(before - after >= 16 << 10, "resident \(before) KiB -> \(after) KiB")
    }
}
