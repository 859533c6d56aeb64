import Foundation
import RedisClient

/// One section of Redis's INFO, as its `field:value` lines.
func redisInfo(_ connection: RedisConnection, _ section: String) throws -> [Substring: Substring] {
    var fields: [Substring: Substring] = [:]
    for line in (try connection.send("INFO", section).string ?? "").split(whereSeparator: \.isNewline) {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2 { fields[parts[0]] = parts[1] }
    }
    return fields
}

/// Redis's CPU seconds so far (INFO cpu): its own threads, and its children (AOF rewrites, saves).
func redisCPUSeconds(_ connection: RedisConnection) throws -> (main: Double, children: Double) {
    let info = try redisInfo(connection, "cpu")
    func seconds(_ field: Substring) -> Double { info[field].flatMap { Double($0) } ?? 0 }
    return (seconds("used_cpu_user") + seconds("used_cpu_sys"),
            seconds("used_cpu_user_children") + seconds("used_cpu_sys_children"))
}

/// Commands Redis has run so far (INFO commandstats, every command's `calls` summed; Redis 7
/// counts the commands a script runs as well as the script's own call). Per request, this is
/// the work a request costs Redis, free of the machine's speed.
func redisCommandCalls(_ connection: RedisConnection) throws -> Int {
    try redisInfo(connection, "commandstats").reduce(0) { calls, field in
        // cmdstat_<command>:calls=N,usec=...
        guard field.key.hasPrefix("cmdstat_"), let start = field.value.range(of: "calls=")?.upperBound else { return calls }
        return calls + (Int(field.value[start...].prefix(while: \.isNumber)) ?? 0)
    }
}

/// Redis `used_memory` in bytes (INFO memory).
func redisUsedMemory(_ connection: RedisConnection) throws -> Int? {
    try redisInfo(connection, "memory")["used_memory"].flatMap { Int($0) }
}

/// What a stretch of load cost: Redis's CPU (its own threads), the daemons' CPU, the commands
/// Redis ran and the bytes it received, read before and after (`per(requests:)`). Redis's
/// figures include the load generator's own pushes and pops (one LPUSH per request and its
/// share of the BLMPOPs): that is what Redis does for a request, whoever sends it. On a cluster
/// `nodes` are its masters: the fields sum them, and `*_per_node` fields show each.
struct CostMeter {
    struct Reading {
        var redisCPU: [Double]
        var daemonCPU: Double
        var commands: [Int]
        var bytesIn: [Int]
    }

    /// One connection per Redis (per master on a cluster), each to that node alone.
    let nodes: [RedisConnection]
    let pids: [Int32]

    func read() throws -> Reading {
        var reading = Reading(redisCPU: [], daemonCPU: pids.compactMap(processCPUSeconds(pid:)).reduce(0, +),
                              commands: [], bytesIn: [])
        for node in nodes {
            reading.redisCPU.append(try redisCPUSeconds(node).main)
            reading.commands.append(try redisCommandCalls(node))
            reading.bytesIn.append(try redisInfo(node, "stats")["total_net_input_bytes"].flatMap { Int($0) } ?? 0)
        }
        return reading
    }

    /// JSON fields of the cost per request between two readings (the INFO calls themselves
    /// are a handful of commands and bytes, nothing per request).
    static func fields(from before: Reading, to after: Reading, requests: Int) -> [String] {
        let n = Double(max(1, requests))
        let cpu = zip(before.redisCPU, after.redisCPU).map { ($1 - $0) / n * 1e6 }
        let commands = zip(before.commands, after.commands).map { Double($1 - $0) / n }
        let bytes = zip(before.bytesIn, after.bytesIn).map { Double($1 - $0) / n }
        var fields = [
            "\"redis_cpu_us\":" + String(format: "%.1f", cpu.reduce(0, +)),
            "\"daemon_cpu_us\":" + String(format: "%.1f", (after.daemonCPU - before.daemonCPU) / n * 1e6),
            "\"redis_commands\":" + String(format: "%.2f", commands.reduce(0, +)),
            "\"redis_bytes_in\":" + String(format: "%.0f", bytes.reduce(0, +)),
        ]
        if cpu.count > 1 {
            func list(_ values: [Double], _ format: String) -> String {
                "[" + values.map { String(format: format, $0) }.joined(separator: ",") + "]"
            }
            fields += ["\"redis_cpu_us_per_node\":" + list(cpu, "%.1f"),
                       "\"redis_commands_per_node\":" + list(commands, "%.2f")]
        }
        return fields
    }
}
