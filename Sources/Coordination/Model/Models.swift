import Foundation

// The seed design's types (../seed, "FILE 1"), with its JSON names. Decoding is lenient where
// the protocol gives defaults and strict where it names a rule (PROTOCOL.md section 2.2).

/// The kind of agent that made a recommendation (the seed's `type`).
public enum RecommendationType: String, Codable, Sendable, CaseIterable {
    case cost, performance, resource, application
}

/// How risky a recommendation is; it decides who approves it and how long the approval waits.
public enum RiskLevel: String, Codable, Sendable, CaseIterable, Comparable {
    case low, medium, high, critical

    /// The seed's risk scores: lower is safer.
    public var score: Int {
        switch self {
        case .low: 1
        case .medium: 2
        case .high: 3
        case .critical: 4
        }
    }

    /// Lower risk first: low < medium < high < critical.
    public static func < (a: RiskLevel, b: RiskLevel) -> Bool { a.score < b.score }
}

/// Where an approval stands.
public enum ApprovalStatus: String, Codable, Sendable, CaseIterable {
    case pending, approved, rejected, expired
}

/// Plan and step states. `cancelled` is an addition: a plan whose dependency failed.
public enum ExecutionStatus: String, Codable, Sendable, CaseIterable {
    case pending, running, completed, failed
    case rolledBack = "rolled_back"
    case cancelled

    /// Whether nothing follows this status.
    public var isFinal: Bool {
        switch self {
        case .completed, .failed, .rolledBack, .cancelled: true
        case .pending, .running: false
        }
    }
}

/// The kinds of conflict (PROTOCOL.md section 2.2).
public enum ConflictType: String, Codable, Sendable, CaseIterable {
    case resource, action, dependency, timing
}

/// Where a recommendation stands. The seed used free strings ("approved",
/// "pending_approval"); these are the same strings plus the ends of its life.
public enum RecommendationStatus: String, Codable, Sendable, CaseIterable {
    case pendingApproval = "pending_approval"
    case approved, executing, completed, failed, rejected, expired, cancelled
    case rolledBack = "rolled_back"
}

// MARK: - Decoding helpers that name the field

extension KeyedDecodingContainer {
    func requiredString(_ key: Key) throws -> String {
        guard contains(key), !((try? decodeNil(forKey: key)) ?? false) else { throw invalid(key, "required") }
        return try decode(String.self, forKey: key)
    }

    func requiredEnum<E: RawRepresentable & CaseIterable>(_ type: E.Type, _ key: Key) throws -> E where E.RawValue == String {
        let raw = try requiredString(key)
        guard let value = E(rawValue: raw) else {
            let known = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw invalid(key, "unknown value \(WireLimits.quoted(raw)) (one of \(known))")
        }
        return value
    }

    func invalid(_ key: Key, _ message: String) -> DecodingError {
        .dataCorrupted(DecodingError.Context(codingPath: codingPath + [key], debugDescription: message))
    }
}
