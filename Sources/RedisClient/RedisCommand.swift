/// A value that can be one argument of a command, binary safe.
public protocol RedisArgument: Sendable {
    var redisBytes: [UInt8] { get }
}

extension String: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Substring: RedisArgument {
    public var redisBytes: [UInt8] { Array(utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    public var redisBytes: [UInt8] { self }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    public var redisBytes: [UInt8] { Array(self) }
}

extension ContiguousArray: RedisArgument where Element == UInt8 {
    public var redisBytes: [UInt8] { Array(self) }
}

extension Int: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Int64: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension Int32: RedisArgument {
    public var redisBytes: [UInt8] { Array(String(self).utf8) }
}

extension UInt64: RedisArgument {
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
    public var arguments: [[UInt8]]

    public init(arguments: [[UInt8]]) {
        self.arguments = arguments
    }

    /// `RedisCommand("LPUSH", "k", payloadBytes, 5)`
    public init(_ name: String, _ args: any RedisArgument...) {
        self.init(name, arguments: args)
    }

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

/// Appends commands in RESP2 form to a reusable byte buffer.
struct RESPEncoder {
    var buffer: [UInt8] = []

    mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func append(_ command: RedisCommand) {
        appendHeader(UInt8(ascii: "*"), command.arguments.count)
        for argument in command.arguments {
            appendHeader(UInt8(ascii: "$"), argument.count)
            buffer.append(contentsOf: argument)
            buffer.append(13)
            buffer.append(10)
        }
    }

    private mutating func appendHeader(_ marker: UInt8, _ value: Int) {
        buffer.append(marker)
        appendDecimal(value)
        buffer.append(13)
        buffer.append(10)
    }

    private mutating func appendDecimal(_ value: Int) {
        if value < 10 {
            buffer.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var v = value
        withUnsafeMutableBytes(of: &digits) { raw in
            while v > 0 {
                raw[count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
                count += 1
            }
            var i = count - 1
            while i >= 0 {
                buffer.append(raw[i])
                i -= 1
            }
        }
    }
}
