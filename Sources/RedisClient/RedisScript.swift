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
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { String(format: "%02x", $0) }.joined()
        ScriptRegistry.shared.add(self)
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
