import Foundation

/// A conflict between recommendations and how it was resolved (the seed's `Conflict`).
public struct Conflict: Codable, Sendable, Equatable {
    /// A new identifier.
    public var id: String
    /// Resource, action or dependency.
    public var type: ConflictType
    /// The two parties (a cycle's members; a missing dependency's `[id, missing_id]`).
    public var recommendationIDs: [String]
    /// What conflicts, for people.
    public var description: String
    /// `low`, `medium` or `high`, from the parties' risks.
    public var severity: String
    /// The field that conflicts (`affected_resources`, `action`, `dependencies`).
    public var conflictingField: String
    /// When it was found.
    public var detectedAt: Date
    /// Always true: the engine resolves every conflict it reports.
    public var resolved: Bool
    /// How it was resolved, for people.
    public var resolution: String?
    /// When it was resolved.
    public var resolvedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, type
        case recommendationIDs = "recommendation_ids"
        case description, severity
        case conflictingField = "conflicting_field"
        case detectedAt = "detected_at"
        case resolved, resolution
        case resolvedAt = "resolved_at"
    }

    /// A conflict.
    public init(id: String, type: ConflictType, recommendationIDs: [String], description: String, severity: String,
                conflictingField: String, detectedAt: Date, resolved: Bool = false, resolution: String? = nil,
                resolvedAt: Date? = nil) {
        self.id = id
        self.type = type
        self.recommendationIDs = recommendationIDs
        self.description = description
        self.severity = severity
        self.conflictingField = conflictingField
        self.detectedAt = detectedAt
        self.resolved = resolved
        self.resolution = resolution
        self.resolvedAt = resolvedAt
    }
}
