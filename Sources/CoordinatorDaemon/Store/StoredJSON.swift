import Coordination
import Foundation
import RedisClient

extension RedisReply {
    /// The value the daemon stored here as JSON, with its exact bytes (for a commit's guard),
    /// or nil when the key was empty or holds something unreadable.
    func stored<T: Decodable>(_ type: T.Type) -> (bytes: [UInt8], value: T)? {
        guard let bytes, let value = try? WireJSON.decoder().decode(T.self, from: Data(bytes)) else { return nil }
        return (bytes, value)
    }

    /// The plan stored here, read with `ExecutionPlan.init(stored:)` (the executor reads one
    /// at every step: `JSONLexer`, not `JSONDecoder`), with its exact bytes; nil when the key
    /// was empty or holds something unreadable.
    func stored(_ type: ExecutionPlan.Type) -> (bytes: [UInt8], value: ExecutionPlan)? {
        guard let bytes, let plan = try? ExecutionPlan(stored: bytes) else { return nil }
        return (bytes, plan)
    }

    /// The recommendation record stored here, or nil.
    var record: RecommendationRecord? {
        bytes.flatMap { try? RecommendationRecord.decode($0) }
    }
}
