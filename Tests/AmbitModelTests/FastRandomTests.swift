import Testing

@testable import AmbitModel

@Suite struct FastRandomTests {
    /// Endpoint choices spread evenly: 40,000 picks over 4 endpoints land within 7 standard deviations of
    /// 10,000 each (a false failure is rarer than one in 10¹¹).
    @Test func choicesSpreadEvenly() {
        var random = FastRandom()
        var counts = [0, 0, 0, 0]
        for _ in 0..<40_000 { counts[[0, 1, 2, 3].randomElement(using: &random)!] += 1 }
        for count in counts { #expect(abs(count - 10_000) < 610, "\(counts)") }
    }

    /// Every bit is used: over 4,096 numbers each bit is set about half the time, and no number repeats.
    @Test func numbersUseEveryBitAndDoNotRepeat() {
        var random = FastRandom()
        let numbers = (0..<4_096).map { _ in random.next() }
        #expect(Set(numbers).count == numbers.count)
        for bit in 0..<64 {
            let set = numbers.filter { $0 & (1 << UInt64(bit)) != 0 }.count
            #expect(abs(set - 2_048) < 224, "bit \(bit) set \(set) times of 4,096")
        }
    }

    /// Generators made on different threads draw from one sequence: concurrent draws never repeat.
    @Test func concurrentDrawsDoNotRepeat() async {
        let batches = await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var random = FastRandom()
                    return (0..<1_000).map { _ in random.next() }
                }
            }
            return await group.reduce(into: []) { $0.append(contentsOf: $1) }
        }
        #expect(Set(batches).count == 8_000)
    }
}
