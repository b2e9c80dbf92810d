import Synchronization

/// Random numbers for choices that need spread, not secrecy: which endpoint serves a connection or a
/// request, whether a fault or a mirror applies, a weighted route. The standard library's
/// `SystemRandomNumberGenerator` makes a `getrandom(2)` system call for every number, which on the data
/// path is one per connection or request. This is SplitMix64 over one process-wide atomic counter, seeded
/// once from the system: lock-free, and safe from any thread. Never use it for keys, tokens or identifiers
/// a peer must not guess.
public struct FastRandom: RandomNumberGenerator {
    private static let state = Atomic<UInt64>(UInt64.random(in: .min ... .max))

    public init() {}

    public mutating func next() -> UInt64 {
        // Each call takes its own point of the Weyl sequence, then mixes it (Steele, Lea and Flood, 2014).
        var mixed = Self.state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
