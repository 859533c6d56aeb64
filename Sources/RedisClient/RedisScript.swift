import Crypto
import Foundation

/// A Lua script known by its SHA1, run with EVALSHA.
///
/// Creating a script (or a command from it) records its source in a process-wide registry, so
/// any connection that meets a NOSCRIPT reply for it, also inside a pipeline, can SCRIPT LOAD it
/// and retry. `RedisConnection.register(_:)` does the same per connection.
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String
    /// Lower-case hex SHA1 of the source, as Redis computes it.
    public let sha1: String

    /// A script with this source, registered so that NOSCRIPT replies can be answered.
    public init(_ source: String) {
        self.source = source
        self.sha1 = Self.sha1Hex(Array(source.utf8))
        ScriptRegistry.shared.add(self)
    }

    /// Lower-case hex SHA-1 of `bytes` (swift-crypto's), as Redis names a script and as Lua's
    /// `redis.sha1hex` gives it.
    public static func sha1Hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(40)
        for byte in Insecure.SHA1.hash(data: bytes) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `EVALSHA sha numkeys keys... args...`: the script run with these keys and arguments.
    public func command(keys: [any RedisArgument], args: [any RedisArgument]) -> RedisCommand {
        var all: [[UInt8]] = []
        all.reserveCapacity(3 + keys.count + args.count)
        all.append(Array("EVALSHA".utf8))
        all.append(Array(sha1.utf8))
        all.append(keys.count.redisBytes)
        for key in keys { all.append(key.redisBytes) }
        for arg in args { all.append(arg.redisBytes) }
        return RedisCommand(arguments: all)
    }
}
