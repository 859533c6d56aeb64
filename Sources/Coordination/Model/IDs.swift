#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// Where the engine gets identifiers (recommendations keep theirs; conflicts, approvals, plans,
/// steps and responses get new ones). Injected so tests can use predictable ids.
public protocol IDGenerator {
    /// A new identifier, different from every one this generator gave before.
    mutating func next() -> String
}

/// Random version-4 UUIDs in lowercase, each drawn whole from the system's random source: ids
/// and the version tokens made from them must be unique across every daemon and restart,
/// which a generator seeded from a few bytes cannot promise.
public struct UUIDGenerator: IDGenerator {
    /// Random words drawn from the system in one call, used up one per half UUID (a request
    /// makes a dozen ids; one system call each took 6 % of the daemon's time).
    private var words: [UInt64] = []

    /// A generator drawing from the system's random source.
    public init() {}

    private mutating func word() -> UInt64 {
        if words.isEmpty { words = Self.draw(16) }
        return words.removeLast()
    }

    /// `count` words of the system's randomness, in one call (`arc4random_buf`: the kernel's
    /// `getrandom` on glibc 2.36 and later, as on Apple's systems).
    static func draw(_ count: Int) -> [UInt64] {
        var words = [UInt64](repeating: 0, count: count)
        #if canImport(Glibc) || canImport(Darwin)
        words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        #else
        var random = SystemRandomNumberGenerator()
        for index in words.indices { words[index] = random.next() }
        #endif
        return words
    }

    /// A new version-4 UUID, such as `1b4e28ba-2fa1-4d3b-883f-0016d3cca427`.
    public mutating func next() -> String {
        var high = word()
        var low = word()
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { buffer in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            // Two hex digits per byte, most significant first, with dashes after 4, 6, 8 and 10 bytes.
            Self.hex.withUnsafeBufferPointer { hex in
                var at = 0
                for k in 0..<16 {
                    let word = k < 8 ? high : low
                    let byte = Int(truncatingIfNeeded: word >> UInt64(56 - 8 * (k & 7))) & 0xFF
                    out.storeBytes(of: hex[byte], toByteOffset: at, as: UInt16.self)
                    at += 2
                    if k == 3 || k == 5 || k == 7 || k == 9 {
                        out.storeBytes(of: 0x2D, toByteOffset: at, as: UInt8.self)
                        at += 1
                    }
                }
            }
            return 36
        }
    }

    /// A byte's two lowercase hex digits, as stored little-endian: first digit in the low byte.
    private static let hex: [UInt16] = (0..<256).map { byte in
        func digit(_ value: Int) -> UInt16 { UInt16(value < 10 ? 48 + value : 87 + value) }
        return UInt16(littleEndian: digit(byte >> 4) | digit(byte & 0xF) << 8)
    }
}

/// `prefix-1`, `prefix-2`, ...: predictable ids for tests and benchmarks.
public struct SequentialIDGenerator: IDGenerator {
    /// What every identifier starts with.
    public let prefix: String
    private var counter = 0

    /// A generator that starts at `prefix-1`.
    public init(prefix: String = "id") { self.prefix = prefix }

    /// `prefix-N` for the next N.
    public mutating func next() -> String {
        counter += 1
        return "\(prefix)-\(counter)"
    }
}
