/// Bytes of a text being built, made into a `String` once (appending to a `String` piece by
/// piece checks capacity and uniqueness at every piece).
struct TextBuffer: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = max(16, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    mutating func reset() { count = 0 }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra <= capacity { return }
        var size = capacity * 2
        while size < count + extra { size *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = size
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let source = bytes.baseAddress { (base + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count) }
        count += bytes.count
    }

    @inline(__always)
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func append(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) != nil { return }
        var copy = text
        copy.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func append(byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    /// Decimal digits, with a minus sign when negative.
    mutating func append(_ value: Int) {
        reserve(20)
        var magnitude = value.magnitude
        if value < 0 { base[count] = 0x2D; count += 1 }
        var digits = 1
        var probe = magnitude
        while probe >= 10 { probe /= 10; digits += 1 }
        var at = count + digits - 1
        repeat {
            base[at] = UInt8(truncatingIfNeeded: 48 + magnitude % 10)
            magnitude /= 10
            at -= 1
        } while magnitude > 0
        count += digits
    }

    /// `String(format: "%.2f", value)` (see `DecimalText.twoDecimals`).
    mutating func appendTwoDecimals(_ value: Double) {
        guard let cents = DecimalText.cents(value) else {
            append(String(format: "%.2f", value))
            return
        }
        append(Int(cents / 100))
        let fraction = Int(cents % 100)
        reserve(3)
        base[count] = 0x2E
        base[count + 1] = UInt8(truncatingIfNeeded: 48 + fraction / 10)
        base[count + 2] = UInt8(truncatingIfNeeded: 48 + fraction % 10)
        count += 3
    }

    func makeString() -> String {
        String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self)
    }
}
