/// splitmix64 (Steele, Lea and Flood): a fast full-period 64-bit generator. Seeded by hand, it
/// makes the reproducible requests of the benchmarks and property tests; identifiers come
/// from the system's random source instead (`UUIDGenerator`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state; the same state gives the same sequence.
    public var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (`bound` > 0); the modulo bias is negligible for small bounds.
    public mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }

    /// A number in `0..<bound` as an `Int` (`bound` > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// A double in `[0, 1)`, from the top 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}
