import AmbitProcess
import Foundation
import Testing

/// Freed heap goes back to the kernel when the daemons' trimmer runs, not only at exit.
@Suite struct HeapTrimmerTests {
    @Test func freedHeapIsReturnedOnceWhenAboveTheThreshold() {
        // 96 MiB in 32 KiB blocks, each followed by a small block that outlives it (as a connection's
        // buffers are interleaved with longer-lived objects), touched, then freed: the survivors keep
        // the allocator from shrinking its heaps on its own.
        var blocks: [UnsafeMutableRawPointer] = []
        var survivors: [UnsafeMutableRawPointer] = []
        for _ in 0..<3072 {
            let block = malloc(32 << 10)!
            memset(block, 1, 32 << 10)
            blocks.append(block)
            survivors.append(malloc(64)!)
        }
        defer { for survivor in survivors { free(survivor) } }
        for block in blocks { free(block) }
        blocks = []
        #expect(HeapTrimmer.freeBytes >= 48 << 20)
        #expect(HeapTrimmer(threshold: Int.max).trimIfWorthIt() == nil)

        let trimmer = HeapTrimmer(threshold: 16 << 20)
        let before = HeapTrimmer.residentBytes
        #expect(trimmer.trimIfWorthIt() != nil)
        let after = HeapTrimmer.residentBytes
        #expect(before - after >= 32 << 20, "resident \(before >> 20) MiB -> \(after >> 20) MiB")
        // The pages stay on the free lists; with nothing new resident, the next check does not trim again.
        #expect(HeapTrimmer.freeBytes >= 48 << 20)
        #expect(trimmer.trimIfWorthIt() == nil)
    }
}
