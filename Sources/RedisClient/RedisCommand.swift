/// A value that can be one argument of a command, binary safe.
public protocol RedisArgument: Sendable {
    /// The argument as Redis receives it.
    var redisBytes: [UInt8] { get }
}

extension String: RedisArgument {
    /// The string's UTF-8 bytes.
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Substring: RedisArgument {
    /// The substring's UTF-8 bytes.
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    /// The bytes as they are.
    public var redisBytes: [UInt8] { self }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    /// The bytes as they are.
    public var redisBytes: [UInt8] { Array(self) }
}

extension ContiguousArray: RedisArgument where Element == UInt8 {
    /// The bytes as they are.
    public var redisBytes: [UInt8] { Array(self) }
}

extension Int: RedisArgument {
    /// The decimal text, as Redis reads integers.
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Int64: RedisArgument {
    /// The decimal text, as Redis reads integers.
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Int32: RedisArgument {
    /// The decimal text, as Redis reads integers.
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension UInt64: RedisArgument {
    /// The decimal text, as Redis reads integers.
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Double: RedisArgument {
    /// The shortest text that reads back as the same Double ("1", "0.25", "1e-05", "inf",
    /// "-inf"); integral values are written without ".0".
    public var redisBytes: [UInt8] {
        if isNaN { return Array("nan".utf8) }
        if isInfinite { return Array((self < 0 ? "-inf" : "inf").utf8) }
        if self == rounded(), abs(self) < 1e15, !(self == 0 && sign == .minus) {
            return Array(String(Int64(self)).utf8)
        }
        return Array(description.utf8)
    }
}

/// One command's arguments (the name first), binary safe.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    /// The arguments, the command's name first.
    public var arguments: [[UInt8]]

    /// A command from its arguments as bytes, the name first.
    public init(arguments: [[UInt8]]) {
        self.arguments = arguments
    }

    /// `RedisCommand("LPUSH", "k", payloadBytes, 5)`
    public init(_ name: String, _ args: any RedisArgument...) {
        self.init(name, arguments: args)
    }

    /// `RedisCommand("DEL", arguments: keys)`: a command whose arguments are in an array.
    public init(_ name: String, arguments args: [any RedisArgument]) {
        var all: [[UInt8]] = []
        all.reserveCapacity(args.count + 1)
        all.append(Array(name.utf8))
        for arg in args { all.append(arg.redisBytes) }
        self.arguments = all
    }

    /// The command name, upper-cased.
    public var name: String { arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? "" }

    /// For logs: the name and the argument count (arguments may hold secrets or large payloads).
    public var description: String { "\(name) (\(max(0, arguments.count - 1)) args)" }
}

/// Appends commands in RESP2 form to a reusable byte buffer (the hot path of every command:
/// it sizes each command first, then writes it with raw stores, with no per-byte checks).
final class RESPEncoder {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written since the last `reset()`.
    private(set) var count = 0

    init(capacity: Int = 4096) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit {
        base.deallocate()
    }

    /// The encoded bytes (valid until the next `append` or `reset`).
    var bytes: UnsafePointer<CChar> {
        UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
    }

    func reset() {
        count = 0
        // Do not keep a huge buffer (a one-off big pipeline or payload) for ever.
        if capacity > 1 << 22 {
            base.deallocate()
            capacity = 4096
            base = .allocate(capacity: capacity)
        }
    }

    func append(_ command: RedisCommand) {
        command.arguments.withUnsafeBufferPointer { arguments in
            var needed = 3 + Self.digits(arguments.count)
            for i in arguments.indices { needed += 5 + Self.digits(arguments[i].count) + arguments[i].count }
            reserve(count + needed)
            var p = base + count
            p = Self.header(p, UInt8(ascii: "*"), arguments.count)
            for i in arguments.indices {
                p = arguments[i].withUnsafeBufferPointer { source in
                    var q = Self.header(p, UInt8(ascii: "$"), source.count)
                    if let from = source.baseAddress {
                        q.update(from: from, count: source.count)
                        q += source.count
                    }
                    q[0] = 13
                    q[1] = 10
                    return q + 2
                }
            }
            count = p - base
        }
    }

    private func reserve(_ total: Int) {
        guard total > capacity else { return }
        var newCapacity = capacity * 2
        while newCapacity < total { newCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        grown.update(from: base, count: count)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    private static func digits(_ value: Int) -> Int {
        var n = 1
        var v = value
        while v >= 10 {
            v /= 10
            n += 1
        }
        return n
    }

    /// Writes marker, decimal value (non-negative), CR LF; returns the position after it.
    private static func header(_ start: UnsafeMutablePointer<UInt8>, _ marker: UInt8, _ value: Int) -> UnsafeMutablePointer<UInt8> {
        start[0] = marker
        let width = digits(value)
        var v = value
        var i = width
        while i > 0 {
            start[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
            i -= 1
        }
        start[width + 1] = 13
        start[width + 2] = 10
        return start + width + 3
    }
}
