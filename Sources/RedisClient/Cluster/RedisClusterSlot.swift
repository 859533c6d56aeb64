/// Redis Cluster's key slots: CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection)
/// of the key, or of its hash tag, modulo 16384.
///
/// The hash tag follows the Redis Cluster specification: when the key holds a `{`, and a `}`
/// somewhere after that first `{`, and at least one byte lies between them, only those bytes
/// are hashed. So `{user1000}.following` and `{user1000}.followers` share a slot; `foo{}{bar}`
/// hashes whole (the first tag is empty); `foo{{bar}}zap` hashes `{bar`; `foo{bar}{zap}` hashes
/// `bar`.
public enum RedisClusterSlot {
    /// The number of slots in a Redis Cluster.
    public static let count = 16384

    /// The slot of a key given as bytes.
    public static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        return Int(crc16(hashed(bytes)) & 0x3FFF)
    }

    /// The slot of a key (its UTF-8 bytes).
    public static func of(_ key: String) -> Int {
        of(Array(key.utf8))
    }

    /// The bytes that are hashed: the hash tag when there is a non-empty one, else the key.
    public static func hashed(_ key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
              let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
              close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    /// CRC16-XMODEM, as Redis's `crc16.c` computes it.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    /// The first key of a command, as the daemon's commands place it: none for commands that
    /// take no key (PING, WAIT, SCRIPT, CLUSTER, INFO, PUBLISH…, and scripts called with
    /// numkeys 0), the first of `numkeys` keys for EVAL/EVALSHA/FCALL (and their `_RO`
    /// forms), the first stream after `STREAMS` for XREAD/XREADGROUP, the third argument for
    /// `OBJECT`/`MEMORY`/`XINFO`/`XGROUP` subcommands, else the first argument.
    public static func firstKey(of command: RedisCommand) -> [UInt8]? {
        let arguments = command.arguments
        guard arguments.count >= 2 else { return nil }
        let name = command.name
        if keyless.contains(name) { return nil }
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            guard arguments.count >= 4, let keys = Int(String(decoding: arguments[2], as: UTF8.self)), keys > 0 else {
                return nil
            }
            return arguments[3]
        case "XREAD", "XREADGROUP":
            guard let streams = arguments.firstIndex(where: { String(decoding: $0, as: UTF8.self).uppercased() == "STREAMS" }),
                  streams + 1 < arguments.count
            else { return nil }
            return arguments[streams + 1]
        case "OBJECT", "MEMORY", "XINFO", "XGROUP":
            return arguments.count >= 3 ? arguments[2] : nil
        default:
            return arguments[1]
        }
    }

    /// The slot of a command's first key (see `firstKey(of:)`), nil when it takes none.
    public static func of(_ command: RedisCommand) -> Int? {
        firstKey(of: command).map { of($0) }
    }

    private static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "WAIT", "SCRIPT", "FUNCTION", "CLUSTER", "ASKING", "READONLY",
        "READWRITE", "MULTI", "EXEC", "DISCARD", "AUTH", "SELECT", "HELLO", "CLIENT", "CONFIG",
        "DBSIZE", "FLUSHALL", "FLUSHDB", "TIME", "PUBLISH", "COMMAND", "KEYS", "SCAN",
        "RANDOMKEY", "LASTSAVE", "SLOWLOG", "LATENCY", "DEBUG", "ROLE", "QUIT", "RESET",
    ]
}
