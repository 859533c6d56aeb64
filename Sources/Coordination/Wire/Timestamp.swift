import Foundation

/// RFC 3339 timestamps in UTC with milliseconds (`2026-11-24T10:15:30.123Z`), the wire format
/// of every date (PROTOCOL.md). Hand-written both ways: date formatters cost microseconds per
/// call, and a large request carries tens of thousands of dates.
public enum Timestamp {
    /// `2026-11-24T10:15:30.123Z`: UTC, milliseconds (truncated).
    public static func string(from date: Date) -> String {
        let totalMs = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var days = totalMs >= 0 ? totalMs / 86_400_000 : (totalMs - 86_399_999) / 86_400_000
        var msOfDay = totalMs - days * 86_400_000
        if msOfDay < 0 { msOfDay += 86_400_000; days -= 1 }
        let (year, month, day) = civil(fromDays: days)
        let hour = msOfDay / 3_600_000
        let minute = msOfDay / 60_000 % 60
        let second = msOfDay / 1000 % 60
        let ms = msOfDay % 1000
        return String(unsafeUninitializedCapacity: 24) { buffer in
            var at = 0
            func put(_ value: Int64, _ digits: Int) {
                var divisor: Int64 = 1
                for _ in 1..<digits { divisor *= 10 }
                var v = value
                while divisor > 0 {
                    buffer[at] = UInt8(48 + v / divisor)
                    v %= divisor
                    divisor /= 10
                    at += 1
                }
            }
            func sep(_ c: Character) { buffer[at] = c.asciiValue!; at += 1 }
            put(max(0, min(9999, year)), 4); sep("-"); put(month, 2); sep("-"); put(day, 2); sep("T")
            put(hour, 2); sep(":"); put(minute, 2); sep(":"); put(second, 2); sep("."); put(ms, 3); sep("Z")
            return at
        }
    }

    /// Parses RFC 3339 (`T` or space separator, optional fraction, `Z` or a numeric offset).
    public static func date(from string: String) -> Date? {
        var string = string
        return string.withUTF8 { parse($0) }
    }

    private static func parse(_ s: UnsafeBufferPointer<UInt8>) -> Date? {
        var at = 0
        func digits(_ n: Int) -> Int64? {
            guard at + n <= s.count else { return nil }
            var v: Int64 = 0
            for i in at..<(at + n) {
                let c = s[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            at += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard at < s.count, s[at] == c else { return false }
            at += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2) else { return nil }
        guard at < s.count, s[at] == 0x54 || s[at] == 0x74 || s[at] == 0x20 else { return nil }
        at += 1
        guard let hour = digits(2), expect(0x3A), let minute = digits(2), expect(0x3A), let second = digits(2) else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var fraction = 0.0
        if at < s.count, s[at] == 0x2E {
            at += 1
            var scale = 0.1
            let start = at
            while at < s.count, s[at] >= 48, s[at] <= 57 {
                fraction += Double(s[at] - 48) * scale
                scale /= 10
                at += 1
            }
            guard at > start else { return nil }
        }
        var offset: Int64 = 0
        guard at < s.count else { return nil }
        if s[at] == 0x5A || s[at] == 0x7A {
            at += 1
        } else if s[at] == 0x2B || s[at] == 0x2D {
            let sign: Int64 = s[at] == 0x2D ? -1 : 1
            at += 1
            guard let oh = digits(2), expect(0x3A), let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard at == s.count else { return nil }
        let days = Self.days(fromCivil: year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    // Howard Hinnant's days-from-civil and civil-from-days.
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
