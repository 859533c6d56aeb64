import Foundation

/// Writes JSON straight into bytes, spelled as `JSONEncoder` spells it (compact, `/` escaped
/// as `\/`, numbers in their shortest round-trip form without a trailing `.0`), with object
/// members of a `JSONValue` in sorted order.
///
/// One writer for the whole wire: the engine's results and the daemon's envelopes (replies,
/// events, dead letters) are on the hot path, and `JSONEncoder` builds a tree of boxed values
/// first and takes several times as long. Commas are placed by the writer: call `key` before
/// each member's value, and write values one after another in arrays.
///
/// ```swift
/// var w = JSONWriter()
/// w.beginObject()
/// w.key("ok"); w.bool(true)
/// w.key("ids"); w.beginArray(); w.string("a"); w.string("b"); w.endArray()
/// w.endObject()
/// // w.bytes is {"ok":true,"ids":["a","b"]}
/// ```
public struct JSONWriter: Sendable {
    /// The JSON written so far.
    public internal(set) var bytes: [UInt8] = []
    /// Whether the next value (or member) needs a comma before it: something came before it in
    /// its container. One flag suffices: opening a container or writing a key clears it, and
    /// ending a value (a scalar or a container) sets it.
    private var needsComma = false

    /// A writer whose buffer has room for `capacity` bytes.
    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    @inline(__always) private mutating func separate() {
        if needsComma { bytes.append(0x2C) }
        needsComma = true
    }

    // MARK: Containers

    /// Opens an object (`{`).
    public mutating func beginObject() {
        separate()
        bytes.append(0x7B)
        needsComma = false
    }

    /// Closes the innermost object (`}`).
    public mutating func endObject() {
        bytes.append(0x7D)
        needsComma = true
    }

    /// Opens an array (`[`).
    public mutating func beginArray() {
        separate()
        bytes.append(0x5B)
        needsComma = false
    }

    /// Closes the innermost array (`]`).
    public mutating func endArray() {
        bytes.append(0x5D)
        needsComma = true
    }

    /// Starts a member of the current object; the value written next belongs to it.
    public mutating func key(_ name: String) {
        separate()
        appendString(name)
        bytes.append(0x3A)
        needsComma = false
    }

    /// `key` for a name known to need no escaping (the wire's own member names).
    @inline(__always) mutating func key(raw name: StaticString) {
        separate()
        bytes.append(0x22)
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(0x22)
        bytes.append(0x3A)
        needsComma = false
    }

    // MARK: Scalars

    /// A string, escaped as `JSONEncoder` does: `"`, `\` and `/` with a backslash, control
    /// characters as `\b \f \n \r \t` or `\u00XX`.
    public mutating func string(_ value: String) {
        separate()
        appendString(value)
    }

    /// A string, or `null`.
    public mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    /// An integer.
    public mutating func int(_ value: Int) {
        separate()
        if value >= 0 && value < 10 {
            bytes.append(48 + UInt8(value))
            return
        }
        var text = String(value)
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// `true` or `false`.
    public mutating func bool(_ value: Bool) {
        separate()
        if value { literal("true") } else { literal("false") }
    }

    /// `null`.
    public mutating func null() {
        separate()
        literal("null")
    }

    /// A number in `JSONEncoder`'s spelling: integral values below 10^15 as integers (`-0` for
    /// negative zero), others as the shortest round-trip `description` without a trailing `.0`.
    /// JSON has no NaN or infinity: they are written `null`.
    public mutating func number(_ value: Double) {
        guard value.isFinite else { return null() }
        if value == value.rounded(), abs(value) < 1e15 {
            if value == 0 && value.sign == .minus {
                separate()
                bytes.append(contentsOf: [0x2D, 0x30])
                return
            }
            return int(Int(value))
        }
        separate()
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// The same as `number(_:)`.
    public mutating func double(_ value: Double) { number(value) }

    /// A date as a quoted RFC 3339 `Timestamp`.
    public mutating func date(_ value: Date) {
        separate()
        if value != lastDate {
            lastDate = value
            lastDateJSON = Array(("\"" + Timestamp.string(from: value) + "\"").utf8)
        }
        bytes.append(contentsOf: lastDateJSON)
    }

    /// The last date written and its JSON: a result repeats its `now` in every conflict.
    private var lastDate: Date?
    private var lastDateJSON: [UInt8] = []

    /// Bytes that already are one JSON value (an encoded result), copied as they are.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Any JSON value; object members in sorted order, so equal values give equal bytes.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let d): number(d)
        case .string(let s): string(s)
        case .array(let items):
            beginArray()
            for item in items { self.value(item) }
            endArray()
        case .object(let members): object(members)
        }
    }

    /// An object of `JSONValue`s, members in sorted order.
    public mutating func object(_ members: [String: JSONValue]) {
        beginObject()
        if members.count == 1, let (name, member) = members.first {
            key(name)
            value(member)
        } else if !members.isEmpty {
            for name in members.keys.sorted() {
                key(name)
                value(members[name]!)
            }
        }
        endObject()
    }

    /// An array of strings.
    public mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    /// An array whose elements `write` writes, one value each.
    mutating func array<T>(_ values: [T], _ write: (inout JSONWriter, T) -> Void) {
        beginArray()
        // Elements borrowed from the buffer: iterating the array would copy each one.
        values.withUnsafeBufferPointer { buffer in
            for i in buffer.indices { write(&self, buffer[i]) }
        }
        endArray()
    }

    /// A large array written in parts on every core, then joined: the same bytes as `array`.
    mutating func parallelArray<T: Sendable>(_ values: [T], _ write: @escaping @Sendable (inout JSONWriter, T) -> Void) {
        let parts = values.count < 2048 ? 1 : min(4, ProcessInfo.processInfo.activeProcessorCount)
        guard parts > 1 else { return array(values, write) }
        let outputs = PartOutputs(count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            var writer = JSONWriter()
            let range = (values.count * part / parts)..<(values.count * (part + 1) / parts)
            writer.bytes.reserveCapacity(range.count * 256)
            values.withUnsafeBufferPointer { buffer in
                for k in range { write(&writer, buffer[k]) }
            }
            outputs.set(part, writer.bytes)
        }
        beginArray()
        for part in 0..<parts {
            if part > 0 { bytes.append(0x2C) }
            bytes.append(contentsOf: outputs.take(part))
        }
        endArray()
    }

    // MARK: Bytes

    private mutating func literal(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func appendString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            bytes.append(0x22)
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C || c == 0x2F else { continue }
                // Copy the run before the byte that needs escaping in one go.
                if start < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i])) }
                start = i + 1
                bytes.append(0x5C)
                switch c {
                case 0x22, 0x5C, 0x2F: bytes.append(c)
                case 0x08: bytes.append(0x62)  // b
                case 0x0C: bytes.append(0x66)  // f
                case 0x0A: bytes.append(0x6E)  // n
                case 0x0D: bytes.append(0x72)  // r
                case 0x09: bytes.append(0x74)  // t
                default:
                    let hex: (UInt8) -> UInt8 = { $0 < 10 ? 48 + $0 : 87 + $0 }
                    bytes.append(contentsOf: [0x75, 0x30, 0x30, hex(c >> 4), hex(c & 0xF)])  // u00XX
                }
            }
            if start < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
            bytes.append(0x22)
        }
    }
}

/// The parts of `parallelArray`: each slot is written once, by its own thread, in storage
/// allocated beforehand, and read after all threads are done.
private final class PartOutputs: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<[UInt8]>
    private let count: Int

    init(count: Int) {
        self.count = count
        storage = .allocate(capacity: count)
        storage.initialize(repeating: [], count: count)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    func set(_ part: Int, _ bytes: [UInt8]) { storage[part] = bytes }
    func take(_ part: Int) -> [UInt8] { storage[part] }
}
