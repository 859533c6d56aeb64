/// Interns strings to dense numbers `0, 1, 2, ...` in order of first sight: an open-addressing
/// table over their UTF-8 bytes. A `[String: Int]` costs a SipHash (and a hasher set-up) per
/// lookup; coordination looks up every id, action and resource name once or twice, so this
/// hashes eight bytes per multiply instead. The hash is keyed with a per-process random seed, so
/// colliding names cannot be prepared in advance.
///
/// Bytes decide equality only among ASCII strings: Swift compares strings by canonical
/// equivalence (`"\u{212A}" == "K"`), so at the first name that is not ASCII the table turns
/// into a `[String: Int]` and answers exactly as one.
struct StringTable {
    private(set) var names: [String] = []
    /// Per slot: the upper 32 bits of the name's hash, and its number + 1 (0: empty).
    private var slots: [UInt64]
    private var mask: Int
    /// Set once a name is not ASCII; from then on the only index.
    private var dictionary: [String: Int]?

    static let seed: UInt64 = {
        var system = SystemRandomNumberGenerator()
        return system.next() | 1
    }()

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size *= 2 }
        slots = [UInt64](repeating: 0, count: size)
        mask = size - 1
        names.reserveCapacity(capacity)
    }

    var count: Int { names.count }

    /// The name's number, and whether it was new.
    @inline(__always)
    mutating func intern(_ name: String) -> (id: Int, inserted: Bool) {
        guard dictionary == nil, let hash = Self.asciiHash(name) else { return internSlowly(name) }
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var at = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[at]
            if slot == 0 { break }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 1
                if names[id] == name { return (id, false) }
            }
            at = (at + 1) & mask
        }
        let id = names.count
        names.append(name)
        slots[at] = tag | UInt64(id + 1)
        if names.count * 2 > slots.count { grow() }
        return (id, true)
    }

    /// The name's number, if it has one. (Mutating: a name that is not ASCII turns the table
    /// into a dictionary.)
    @inline(__always)
    mutating func find(_ name: String) -> Int? {
        guard dictionary == nil, let hash = Self.asciiHash(name) else { return findSlowly(name) }
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var at = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[at]
            if slot == 0 { return nil }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 1
                if names[id] == name { return id }
            }
            at = (at + 1) & mask
        }
    }

    private mutating func makeDictionary() {
        guard dictionary == nil else { return }
        var index: [String: Int] = [:]
        index.reserveCapacity(names.count)
        for id in names.indices { index[names[id]] = id }  // all ASCII and distinct so far
        dictionary = index
        slots = []
    }

    private mutating func internSlowly(_ name: String) -> (id: Int, inserted: Bool) {
        makeDictionary()
        if let id = dictionary![name] { return (id, false) }
        let id = names.count
        names.append(name)
        dictionary![name] = id
        return (id, true)
    }

    private mutating func findSlowly(_ name: String) -> Int? {
        makeDictionary()
        return dictionary![name]
    }

    private mutating func grow() {
        let size = slots.count * 2
        var bigger = [UInt64](repeating: 0, count: size)
        let newMask = size - 1
        for id in names.indices {
            let hash = Self.asciiHash(names[id])!
            var at = Int(truncatingIfNeeded: hash) & newMask
            while bigger[at] != 0 { at = (at + 1) & newMask }
            bigger[at] = (hash & 0xFFFF_FFFF_0000_0000) | UInt64(id + 1)
        }
        slots = bigger
        mask = newMask
    }

    /// The hash of an ASCII string's bytes; nil when it is not ASCII.
    @inline(__always)
    static func asciiHash(_ name: String) -> UInt64? {
        if let hash = name.utf8.withContiguousStorageIfAvailable({ asciiHash(UnsafeRawBufferPointer($0)) }) { return hash }
        var copy = name
        return copy.withUTF8 { asciiHash(UnsafeRawBufferPointer($0)) }
    }

    /// Folded multiplies over 8-byte words (the last word overlapping the one before it).
    @inline(__always)
    static func asciiHash(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let count = bytes.count
        var h = seed ^ (UInt64(truncatingIfNeeded: count) &* 0x9E37_79B9_7F4A_7C15)
        var high: UInt64 = 0
        if count >= 8 {
            var at = 0
            while at + 8 < count {
                let word = bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)
                high |= word
                h = mix(h ^ word)
                at += 8
            }
            let word = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            high |= word
            h = mix(h ^ word)
        } else {
            var word: UInt64 = 0
            for k in 0..<count { word |= UInt64(bytes[k]) << UInt64(8 * k) }
            high = word
            h = mix(h ^ word)
        }
        guard high & 0x8080_8080_8080_8080 == 0 else { return nil }
        return mix(h ^ 0xD6E8_FEB8_6659_FD93)
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        let product = x.multipliedFullWidth(by: 0x9FB2_1C65_1E98_DF25)
        return product.high ^ product.low
    }
}
