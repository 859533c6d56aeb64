import Foundation

/// An agent's proposed change (the seed's `Recommendation`, with its JSON names).
public struct Recommendation: Sendable, Equatable {
    /// Unique within the customer's request and active recommendations.
    public var id: String
    /// The agent that made it (it may not approve it).
    public var agentID: String
    /// The agent's kind, free text.
    public var agentType: String
    /// The customer; defaults to the request's.
    public var customerID: String
    /// The kind of agent that made it.
    public var type: RecommendationType
    /// A short human summary.
    public var title: String
    /// A longer human description.
    public var description: String
    /// What it does (`scale_down`, `migrate_to_spot`, ...); names the plan's steps.
    public var action: String
    /// How risky it is.
    public var riskLevel: RiskLevel
    /// Expected savings; ranks second after priority.
    public var estimatedSavings: Double
    /// Expected impact, free text.
    public var estimatedImpact: String
    /// What it touches; none means customer-wide.
    public var affectedResources: [String]
    /// Arguments for the plan's steps.
    public var parameters: [String: JSONValue]
    /// Ids of recommendations that must be decided (and executed) first.
    public var dependencies: [String]
    /// Ranks first: higher wins.
    public var priority: Int
    /// The agent's confidence, 0 to 1; ranks third.
    public var confidence: Double
    /// When the agent made it.
    public var createdAt: Date?
    /// After this it is discarded as `expired`.
    public var expiresAt: Date?
    /// Where it stands; set by the engine and the daemon.
    public var status: RecommendationStatus?
    /// Anything else the agent attaches.
    public var metadata: [String: JSONValue]

    /// A recommendation; everything but its identity and action has a default.
    public init(id: String, agentID: String, agentType: String = "", customerID: String = "",
                type: RecommendationType = .cost, title: String = "", description: String = "",
                action: String, riskLevel: RiskLevel = .low, estimatedSavings: Double = 0,
                estimatedImpact: String = "", affectedResources: [String] = [],
                parameters: [String: JSONValue] = [:], dependencies: [String] = [], priority: Int = 0,
                confidence: Double = 0, createdAt: Date? = nil, expiresAt: Date? = nil,
                status: RecommendationStatus? = nil, metadata: [String: JSONValue] = [:]) {
        self.id = id
        self.agentID = agentID
        self.agentType = agentType
        self.customerID = customerID
        self.type = type
        self.title = title
        self.description = description
        self.action = action
        self.riskLevel = riskLevel
        self.estimatedSavings = estimatedSavings
        self.estimatedImpact = estimatedImpact
        self.affectedResources = affectedResources
        self.parameters = parameters
        self.dependencies = dependencies
        self.priority = priority
        self.confidence = confidence
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.status = status
        self.metadata = metadata
    }
}

extension Recommendation: Codable {
    enum CodingKeys: String, CodingKey {
        case id
        case agentID = "agent_id"
        case agentType = "agent_type"
        case customerID = "customer_id"
        case type, title, description, action
        case riskLevel = "risk_level"
        case estimatedSavings = "estimated_savings"
        case estimatedImpact = "estimated_impact"
        case affectedResources = "affected_resources"
        case parameters, dependencies, priority, confidence
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case status, metadata
    }

    /// Decodes the seed's JSON, with the protocol's defaults and rules.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.requiredString(.id)
        agentID = try c.requiredString(.agentID)
        agentType = try c.decodeIfPresent(String.self, forKey: .agentType) ?? ""
        customerID = try c.decodeIfPresent(String.self, forKey: .customerID) ?? ""
        type = try c.requiredEnum(RecommendationType.self, .type)
        title = try c.decodeIfPresent(String.self, forKey: .title) ?? ""
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        action = try c.requiredString(.action)
        riskLevel = try c.requiredEnum(RiskLevel.self, .riskLevel)
        estimatedSavings = try c.decodeIfPresent(Double.self, forKey: .estimatedSavings) ?? 0
        estimatedImpact = try c.decodeIfPresent(String.self, forKey: .estimatedImpact) ?? ""
        affectedResources = try c.decodeIfPresent([String].self, forKey: .affectedResources) ?? []
        parameters = try c.decodeIfPresent([String: JSONValue].self, forKey: .parameters) ?? [:]
        dependencies = try c.decodeIfPresent([String].self, forKey: .dependencies) ?? []
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        confidence = try c.decodeIfPresent(Double.self, forKey: .confidence) ?? 0
        createdAt = try c.decodeIfPresent(Date.self, forKey: .createdAt)
        expiresAt = try c.decodeIfPresent(Date.self, forKey: .expiresAt)
        // A status sent by a client means nothing to the engine; a stored one is kept.
        status = (try? c.decodeIfPresent(String.self, forKey: .status)).flatMap { $0.flatMap(RecommendationStatus.init(rawValue:)) }
        metadata = try c.decodeIfPresent([String: JSONValue].self, forKey: .metadata) ?? [:]
        guard estimatedSavings.isFinite else { throw c.invalid(.estimatedSavings, "must be a finite number") }
        guard confidence.isFinite, (0...1).contains(confidence) else { throw c.invalid(.confidence, "must be between 0 and 1") }
        if id.isEmpty { throw c.invalid(.id, "must not be empty") }
        if agentID.isEmpty { throw c.invalid(.agentID, "must not be empty") }
        if action.isEmpty { throw c.invalid(.action, "must not be empty") }
    }

    /// Encodes the seed's JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(agentID, forKey: .agentID)
        try c.encode(agentType, forKey: .agentType)
        try c.encode(customerID, forKey: .customerID)
        try c.encode(type, forKey: .type)
        try c.encode(title, forKey: .title)
        try c.encode(description, forKey: .description)
        try c.encode(action, forKey: .action)
        try c.encode(riskLevel, forKey: .riskLevel)
        try c.encode(estimatedSavings, forKey: .estimatedSavings)
        try c.encode(estimatedImpact, forKey: .estimatedImpact)
        try c.encode(affectedResources, forKey: .affectedResources)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(dependencies, forKey: .dependencies)
        try c.encode(priority, forKey: .priority)
        try c.encode(confidence, forKey: .confidence)
        try c.encodeIfPresent(createdAt, forKey: .createdAt)
        try c.encodeIfPresent(expiresAt, forKey: .expiresAt)
        try c.encode(status?.rawValue ?? "", forKey: .status)
        if !metadata.isEmpty { try c.encode(metadata, forKey: .metadata) }
    }
}
