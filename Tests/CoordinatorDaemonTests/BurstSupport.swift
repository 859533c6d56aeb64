import Foundation
import RedisClient
import Testing

/// A burst of small `coordinate` requests under one prefix, and the check that each was
/// answered exactly once: what the fault tests push before the fault and read after it.
extension Harness {
    /// Pushes `count` one-recommendation requests ("<prefix>-<n>", 50 customers, a resource
    /// each) with `replyTo`, in pipelines.
    func pushBurst(_ prefix: String, count: Int, replyTo: String) throws {
        var pushes: [RedisCommand] = []
        for n in 0..<count {
            pushes.append(RedisCommand("LPUSH", "coord:requests", Wire.coordinate(
                "\(prefix)-\(n)", customer: "cust-\(prefix)-\(n % 50)", replyTo: replyTo,
                [Wire.recommendation("rec-\(n)", resources: ["i-\(n)"])])))
            if pushes.count == 1000 { _ = try redis.pipeline(pushes); pushes.removeAll() }
        }
        if !pushes.isEmpty { _ = try redis.pipeline(pushes) }
    }

    /// The request ids answered on `list` (all ok) with how many times each, emptying the list.
    func takeAnswers(on list: String) throws -> [String: Int] {
        var answered: [String: Int] = [:]
        for reply in (try redis.send("LRANGE", list, 0, -1).array ?? []) {
            let object = try Harness.object(try #require(reply.bytes))
            #expect(object["ok"] as? Bool == true, "\(object)")
            answered[try #require(object["request_id"] as? String), default: 0] += 1
        }
        _ = try redis.send("DEL", list)
        return answered
    }

    /// Every one of `count` requests answered exactly once, and nothing dead-lettered.
    func expectAnsweredOnce(_ answered: [String: Int], count: Int) throws {
        #expect(answered.count == count)
        #expect(answered.values.allSatisfy { $0 == 1 })
        #expect(try deadLetters().isEmpty, "nothing innocent went to coord:dead")
    }
}
