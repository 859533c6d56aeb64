import Foundation

/// Number tokens: their ranges, and their values as integers or doubles.
extension JSONLexer {
    /// A number token: its range, and whether it is a plain integer.
    public mutating func numberToken() throws(Malformed) -> (start: Int, count: Int, integer: Bool) {
        skipSpace()
        let start = at
        var integer = true
        if at < end && base[at] == 0x2D { at += 1 }
        guard at < end, base[at] >= 0x30 && base[at] <= 0x39 else { throw fail("invalid value") }
        if base[at] == 0x30 {
            at += 1
        } else {
            while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
        }
        if at < end && base[at] == 0x2E {
            integer = false
            at += 1
            let digits = at
            while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
            guard at > digits else { throw fail("invalid number") }
        }
        if at < end && (base[at] == 0x65 || base[at] == 0x45) {
            integer = false
            at += 1
            if at < end && (base[at] == 0x2B || base[at] == 0x2D) { at += 1 }
            let digits = at
            while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
            guard at > digits else { throw fail("invalid number") }
        }
        return (start, at - start, integer)
    }

    private static let powers: [Double] = (0...22).map { pow(10, Double($0)) }

    /// A number as `Double`: exact when mantissa and power of ten are exact doubles (one
    /// correctly rounded division), else the standard library's correctly rounded parser.
    /// Numbers beyond `Double`'s range are refused.
    public mutating func double() throws(Malformed) -> Double {
        let token = try numberToken()
        var i = token.start
        let negative = base[i] == 0x2D
        if negative { i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var scale = 0
        var simple = true
        let stop = token.start + token.count
        while i < stop {
            let c = base[i]
            if c == 0x2E { i += 1; continue }
            if c == 0x65 || c == 0x45 { simple = false; break }
            mantissa = mantissa &* 10 &+ UInt64(c - 0x30)
            digits += 1
            if digits > 15 { simple = false; break }
            i += 1
        }
        if simple, let dot = (token.start..<stop).first(where: { base[$0] == 0x2E }) {
            scale = stop - dot - 1
        }
        let value: Double
        if simple && scale <= 22 {
            let magnitude = scale == 0 ? Double(mantissa) : Double(mantissa) / Self.powers[scale]
            value = negative ? -magnitude : magnitude
        } else {
            let text = String(decoding: UnsafeBufferPointer(start: base + token.start, count: token.count), as: UTF8.self)
            guard let parsed = Double(text) else { throw fail("invalid number") }
            value = parsed
        }
        guard value.isFinite else { throw fail("number out of range") }
        return value
    }

    /// An integer of at most 18 digits (no fraction or exponent).
    public mutating func int() throws(Malformed) -> Int {
        let token = try numberToken()
        guard token.integer, token.count <= 18 else { throw fail("not an integer of at most 18 digits") }
        var i = token.start
        let negative = base[i] == 0x2D
        if negative { i += 1 }
        var value = 0
        while i < token.start + token.count {
            value = value * 10 + Int(base[i] - 0x30)
            i += 1
        }
        return negative ? -value : value
    }
}
