import Foundation

extension WireJSON {
    /// The JSON of a `coordinate` result, the same as `encoder().encode(response)` (same
    /// members, values, number and string spelling; members in coding-key order, where
    /// `JSONEncoder` uses an unspecified order), written directly: `JSONEncoder` builds a tree
    /// of boxed values first and takes several times as long on large results.
    public static func encode(_ response: CoordinationResponse) -> Data {
        Data(bytes(response))
    }
}

// The wire's models written directly (`WireJSON.encode`, `WireJSON.bytes`): members in
// coding-key order, values spelled as `JSONEncoder` spells them.

extension JSONWriter {

    mutating func write(_ r: CoordinationResponse) {
        beginObject()
        key(raw: "id"); string(r.id)
        key(raw: "total_recommendations"); int(r.totalRecommendations)
        key(raw: "conflicts_detected"); int(r.conflictsDetected)
        key(raw: "conflicts_resolved"); int(r.conflictsResolved)
        key(raw: "recommendations_kept"); int(r.recommendationsKept)
        key(raw: "approvals_required"); int(r.approvalsRequired)
        key(raw: "auto_approved"); int(r.autoApproved)
        key(raw: "conflicts"); parallelArray(r.conflicts) { $0.write($1) }
        key(raw: "conflicts_truncated"); bool(r.conflictsTruncated)
        key(raw: "recommendations"); parallelArray(r.recommendations) { $0.write($1) }
        key(raw: "approvals"); array(r.approvals) { $0.write($1) }
        key(raw: "execution_plans"); array(r.executionPlans) { $0.write($1) }
        key(raw: "discarded"); array(r.discarded) { $0.write($1) }
        key(raw: "execution_order"); strings(r.executionOrder)
        key(raw: "created_at"); date(r.createdAt)
        endObject()
    }

    mutating func write(_ c: Conflict) {
        beginObject()
        key(raw: "id"); string(c.id)
        key(raw: "type"); string(c.type.rawValue)
        key(raw: "recommendation_ids"); strings(c.recommendationIDs)
        key(raw: "description"); string(c.description)
        key(raw: "severity"); string(c.severity)
        key(raw: "conflicting_field"); string(c.conflictingField)
        key(raw: "detected_at"); date(c.detectedAt)
        key(raw: "resolved"); bool(c.resolved)
        if let v = c.resolution { key(raw: "resolution"); string(v) }
        if let v = c.resolvedAt { key(raw: "resolved_at"); date(v) }
        endObject()
    }

    mutating func write(_ r: Recommendation) {
        beginObject()
        key(raw: "id"); string(r.id)
        key(raw: "agent_id"); string(r.agentID)
        key(raw: "agent_type"); string(r.agentType)
        key(raw: "customer_id"); string(r.customerID)
        key(raw: "type"); string(r.type.rawValue)
        key(raw: "title"); string(r.title)
        key(raw: "description"); string(r.description)
        key(raw: "action"); string(r.action)
        key(raw: "risk_level"); string(r.riskLevel.rawValue)
        key(raw: "estimated_savings"); number(r.estimatedSavings)
        key(raw: "estimated_impact"); string(r.estimatedImpact)
        key(raw: "affected_resources"); strings(r.affectedResources)
        key(raw: "parameters"); object(r.parameters)
        key(raw: "dependencies"); strings(r.dependencies)
        key(raw: "priority"); int(r.priority)
        key(raw: "confidence"); number(r.confidence)
        if let v = r.createdAt { key(raw: "created_at"); date(v) }
        if let v = r.expiresAt { key(raw: "expires_at"); date(v) }
        key(raw: "status"); string(r.status?.rawValue ?? "")
        if !r.metadata.isEmpty { key(raw: "metadata"); object(r.metadata) }
        endObject()
    }

    mutating func write(_ a: Approval) {
        beginObject()
        key(raw: "id"); string(a.id)
        key(raw: "recommendation_id"); string(a.recommendationID)
        key(raw: "customer_id"); string(a.customerID)
        key(raw: "risk_level"); string(a.riskLevel.rawValue)
        key(raw: "status"); string(a.status.rawValue)
        key(raw: "requested_by"); string(a.requestedBy)
        key(raw: "requested_at"); date(a.requestedAt)
        if let v = a.approvedBy { key(raw: "approved_by"); string(v) }
        if let v = a.approvedAt { key(raw: "approved_at"); date(v) }
        if let v = a.rejectedBy { key(raw: "rejected_by"); string(v) }
        if let v = a.rejectedAt { key(raw: "rejected_at"); date(v) }
        if let v = a.rejectionReason { key(raw: "rejection_reason"); string(v) }
        key(raw: "expires_at"); date(a.expiresAt)
        if let v = a.notes { key(raw: "notes"); string(v) }
        key(raw: "approvers")
        array(a.approvers) { out, vote in
            out.beginObject()
            out.key(raw: "user_id"); out.string(vote.userID)
            out.key(raw: "at"); out.date(vote.at)
            out.endObject()
        }
        key(raw: "required_approvals"); int(a.requiredApprovals)
        endObject()
    }

    mutating func write(_ p: ExecutionPlan) {
        beginObject()
        key(raw: "id"); string(p.id)
        key(raw: "recommendation_id"); string(p.recommendationID)
        key(raw: "customer_id"); string(p.customerID)
        key(raw: "steps"); array(p.steps) { $0.write($1) }
        key(raw: "status"); string(p.status.rawValue)
        key(raw: "current_step"); int(p.currentStep)
        key(raw: "created_at"); date(p.createdAt)
        if let v = p.startedAt { key(raw: "started_at"); date(v) }
        if let v = p.completedAt { key(raw: "completed_at"); date(v) }
        if let v = p.rolledBackAt { key(raw: "rolled_back_at"); date(v) }
        key(raw: "total_duration_ms"); int(p.totalDurationMs)
        if let v = p.metadata { key(raw: "metadata"); object(v) }
        if let v = p.rollbackReason { key(raw: "rollback_reason"); string(v) }
        if let v = p.cancelReason { key(raw: "cancel_reason"); string(v) }
        endObject()
    }

    mutating func write(_ s: ExecutionStep) {
        beginObject()
        key(raw: "id"); string(s.id)
        key(raw: "action"); string(s.action)
        key(raw: "agent_id"); string(s.agentID)
        key(raw: "parameters"); object(s.parameters)
        key(raw: "critical"); bool(s.critical)
        key(raw: "reversible"); bool(s.reversible)
        key(raw: "status"); string(s.status.rawValue)
        if let v = s.result { key(raw: "result"); object(v) }
        if let v = s.error { key(raw: "error"); string(v) }
        if let v = s.startedAt { key(raw: "started_at"); date(v) }
        if let v = s.completedAt { key(raw: "completed_at"); date(v) }
        key(raw: "duration_ms"); int(s.durationMs)
        if let v = s.rollbackData { key(raw: "rollback_data"); object(v) }
        if let v = s.rollbackError { key(raw: "rollback_error"); string(v) }
        endObject()
    }

    mutating func write(_ d: DiscardedRecommendation) {
        beginObject()
        key(raw: "id"); string(d.id)
        key(raw: "reason"); string(d.reason.rawValue)
        if let v = d.conflictID { key(raw: "conflict_id"); string(v) }
        if let v = d.activeID { key(raw: "active_id"); string(v) }
        if let v = d.relatedID { key(raw: "related_id"); string(v) }
        endObject()
    }
}

extension WireJSON {
    // The JSON of stored and replied models, written directly like `encode(_:)` above.
    /// The recommendation's JSON, as `encoder()` would write it.
    public static func bytes(_ value: Recommendation) -> [UInt8] { write(640) { $0.write(value) } }
    /// The approval's JSON, as `encoder()` would write it.
    public static func bytes(_ value: Approval) -> [UInt8] { write(512) { $0.write(value) } }
    /// The plan's JSON, as `encoder()` would write it.
    public static func bytes(_ value: ExecutionPlan) -> [UInt8] { write(256 + value.steps.count * 400) { $0.write(value) } }
    /// The result's JSON, as `encode(_:)` writes it.
    public static func bytes(_ value: CoordinationResponse) -> [UInt8] {
        write(512 + value.conflicts.count * 420 + value.recommendations.count * 640 + value.discarded.count * 120
              + value.executionPlans.count * 900 + value.approvals.count * 512) { $0.write(value) }
    }

    private static func write(_ capacity: Int, _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var out = JSONWriter()
        out.bytes.reserveCapacity(capacity)
        body(&out)
        return out.bytes
    }
}
