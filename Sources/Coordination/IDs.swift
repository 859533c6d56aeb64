/// Where the engine gets identifiers (recommendations keep theirs; conflicts, approvals, plans,
/// steps and responses get new ones). Injected so tests can use predictable ids.
public protocol IDGenerator {
    mutating func next() -> String
}

/// Random version-4 UUIDs in lowercase, from a fast generator seeded once from the system's
/// random source (a system call per id would dominate large requests).
public struct UUIDGenerator: IDGenerator {
    private var state: UInt64

    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    /// splitmix64: a full-period 64-bit generator, plenty for unique identifiers.
    private mutating func random() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> String {
        var high = random()
        var low = random()
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var at = 0
            func put(_ value: UInt64, _ nibbles: Int) {
                var shift = (nibbles - 1) * 4
                while shift >= 0 {
                    let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF
                    buffer[at] = nibble < 10 ? 48 + nibble : 87 + nibble  // 0-9, a-f
                    at += 1
                    shift -= 4
                }
            }
            put(high >> 32, 8); buffer[at] = 0x2D; at += 1
            put(high >> 16, 4); buffer[at] = 0x2D; at += 1
            put(high, 4); buffer[at] = 0x2D; at += 1
            put(low >> 48, 4); buffer[at] = 0x2D; at += 1
            put(low, 12)
            return at
        }
    }
}

/// `prefix-1`, `prefix-2`, ...: predictable ids for tests and benchmarks.
public struct SequentialIDGenerator: IDGenerator {
    public let prefix: String
    private var counter = 0

    public init(prefix: String = "id") { self.prefix = prefix }

    public mutating func next() -> String {
        counter += 1
        return "\(prefix)-\(counter)"
    }
}
