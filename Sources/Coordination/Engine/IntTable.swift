/// A map from non-negative integers to integers, open addressing (no hashing of the key beyond
/// a multiply; the engine's keys are packed node pairs).
struct IntTable {
    private var keys: [Int]
    private var values: [Int]
    private var shift: UInt64
    private(set) var count = 0

    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        keys = [Int](repeating: -1, count: 1 << bits)
        values = [Int](repeating: 0, count: 1 << bits)
        shift = 64 - bits
    }

    @inline(__always)
    private func start(_ key: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(truncatingIfNeeded: key) &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always)
    func find(_ key: Int) -> Int? {
        let mask = keys.count - 1
        var at = start(key)
        while true {
            let k = keys[at]
            if k == key { return values[at] }
            if k < 0 { return nil }
            at = (at + 1) & mask
        }
    }

    /// Sets the value of a key.
    @inline(__always)
    mutating func set(_ key: Int, _ value: Int) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var at = start(key)
        while true {
            let k = keys[at]
            if k == key { values[at] = value; return }
            if k < 0 { break }
            at = (at + 1) & mask
        }
        keys[at] = key
        values[at] = value
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = [Int](repeating: -1, count: oldKeys.count * 2)
        values = [Int](repeating: 0, count: oldKeys.count * 2)
        shift -= 1
        count = 0
        for at in oldKeys.indices where oldKeys[at] >= 0 { set(oldKeys[at], oldValues[at]) }
    }
}
