import Foundation

enum DecimalText {
    /// `String(format: "%.2f", value)`, without the cost of a formatter for the usual values:
    /// non-negative, below 1e15, and not within rounding noise of a half cent, where the
    /// formatter's exact rounding and this one could differ.
    static func twoDecimals(_ value: Double) -> String {
        guard let cents = cents(value) else { return String(format: "%.2f", value) }
        let fraction = cents % 100
        return String(cents / 100) + (fraction < 10 ? ".0" : ".") + String(fraction)
    }

    /// The value in whole cents where rounding it is safe (see `twoDecimals`), else nil.
    static func cents(_ value: Double) -> Int64? {
        let scaled = value * 100
        guard value >= 0, scaled < 1e15, abs(scaled - scaled.rounded(.down) - 0.5) > max(1e-6, 4 * scaled.ulp) else {
            return nil
        }
        return Int64(scaled.rounded())
    }
}
