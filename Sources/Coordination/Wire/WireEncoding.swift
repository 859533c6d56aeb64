import Foundation

extension WireJSON {
    /// The JSON of a `coordinate` result, the same as `encoder().encode(response)` (same
    /// members, values, number and string spelling; members in coding-key order, where
    /// `JSONEncoder` uses an unspecified order), written directly: `JSONEncoder` builds a tree
    /// of boxed values first and takes several times as long on large results.
    public static func encode(_ response: CoordinationResponse) -> Data {
        var out = JSONWriter()
        out.bytes.reserveCapacity(4096 + response.conflicts.count * 420 + response.recommendations.count * 640
                                  + response.discarded.count * 120 + response.executionPlans.count * 900)
        out.write(response)
        return Data(out.bytes)
    }
}

/// Writes JSON as `JSONEncoder` spells it (default output formatting: compact, `/` escaped).
struct JSONWriter {
    var bytes: [UInt8] = []

    // MARK: Scalars

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            bytes.append(0x22)
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C || c == 0x2F else { continue }
                if start < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i])) }
                start = i + 1
                bytes.append(0x5C)
                switch c {
                case 0x22, 0x5C, 0x2F: bytes.append(c)
                case 0x08: bytes.append(0x62)  // b
                case 0x0C: bytes.append(0x66)  // f
                case 0x0A: bytes.append(0x6E)  // n
                case 0x0D: bytes.append(0x72)  // r
                case 0x09: bytes.append(0x74)  // t
                default:
                    let hex: (UInt8) -> UInt8 = { $0 < 10 ? 48 + $0 : 87 + $0 }
                    bytes.append(contentsOf: [0x75, 0x30, 0x30, hex(c >> 4), hex(c & 0xF)])  // u00XX
                }
            }
            if start < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
            bytes.append(0x22)
        }
    }

    mutating func int(_ value: Int) {
        if value >= 0 && value < 10 {
            bytes.append(48 + UInt8(value))
            return
        }
        var text = String(value)
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// `JSONEncoder`'s spelling: the shortest round-trip `description`, without a trailing `.0`.
    mutating func number(_ value: Double) {
        if value == value.rounded(), abs(value) < 1e15 {
            int(Int(value))
            if value == 0 && value.sign == .minus { bytes.insert(0x2D, at: bytes.count - 1) }
            return
        }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    /// The last date written and its JSON: a result repeats its `now` in every conflict.
    private var lastDate: Date?
    private var lastDateJSON: [UInt8] = []

    mutating func date(_ value: Date) {
        if value != lastDate {
            lastDate = value
            lastDateJSON = Array(("\"" + Timestamp.string(from: value) + "\"").utf8)
        }
        bytes.append(contentsOf: lastDateJSON)
    }

    mutating func json(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let b): bool(b)
        case .number(let d): number(d)
        case .string(let s): string(s)
        case .array(let items):
            bytes.append(0x5B)
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(0x2C) }
                json(item)
            }
            bytes.append(0x5D)
        case .object(let members): object(members)
        }
    }

    mutating func object(_ members: [String: JSONValue]) {
        bytes.append(0x7B)
        var first = true
        for (key, value) in members {
            if !first { bytes.append(0x2C) }
            first = false
            string(key)
            bytes.append(0x3A)
            json(value)
        }
        bytes.append(0x7D)
    }

    mutating func strings(_ values: [String]) {
        bytes.append(0x5B)
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(0x2C) }
            string(value)
        }
        bytes.append(0x5D)
    }

    mutating func array<T>(_ values: [T], _ write: (inout JSONWriter, T) -> Void) {
        bytes.append(0x5B)
        // Elements borrowed from the buffer: iterating the array would copy each one.
        values.withUnsafeBufferPointer { buffer in
            for i in buffer.indices {
                if i > 0 { bytes.append(0x2C) }
                write(&self, buffer[i])
            }
        }
        bytes.append(0x5D)
    }

    /// A large array written in parts on every core, then joined: the same bytes as `array`.
    mutating func parallelArray<T: Sendable>(_ values: [T], _ write: @escaping @Sendable (inout JSONWriter, T) -> Void) {
        let parts = values.count < 2048 ? 1 : min(4, ProcessInfo.processInfo.activeProcessorCount)
        guard parts > 1 else { return array(values, write) }
        let outputs = PartOutputs(count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            var writer = JSONWriter()
            let range = (values.count * part / parts)..<(values.count * (part + 1) / parts)
            writer.bytes.reserveCapacity(range.count * 256)
            values.withUnsafeBufferPointer { buffer in
                for k in range {
                    if k > range.lowerBound { writer.bytes.append(0x2C) }
                    write(&writer, buffer[k])
                }
            }
            outputs.set(part, writer.bytes)
        }
        bytes.append(0x5B)
        for part in 0..<parts {
            if part > 0 { bytes.append(0x2C) }
            bytes.append(contentsOf: outputs.take(part))
        }
        bytes.append(0x5D)
    }

    // MARK: Members

    /// Starts a member: `,"key":` (the comma unless it is the first).
    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(0x2C) }
        bytes.append(0x22)
        raw(name)
        bytes.append(0x22)
        bytes.append(0x3A)
    }

    // MARK: Types of the wire

    mutating func write(_ r: CoordinationResponse) {
        bytes.append(0x7B)
        key("id", first: true); string(r.id)
        key("total_recommendations"); int(r.totalRecommendations)
        key("conflicts_detected"); int(r.conflictsDetected)
        key("conflicts_resolved"); int(r.conflictsResolved)
        key("recommendations_kept"); int(r.recommendationsKept)
        key("approvals_required"); int(r.approvalsRequired)
        key("auto_approved"); int(r.autoApproved)
        key("conflicts"); parallelArray(r.conflicts) { $0.write($1) }
        key("conflicts_truncated"); bool(r.conflictsTruncated)
        key("recommendations"); parallelArray(r.recommendations) { $0.write($1) }
        key("approvals"); array(r.approvals) { $0.write($1) }
        key("execution_plans"); array(r.executionPlans) { $0.write($1) }
        key("discarded"); array(r.discarded) { $0.write($1) }
        key("execution_order"); strings(r.executionOrder)
        key("created_at"); date(r.createdAt)
        bytes.append(0x7D)
    }

    mutating func write(_ c: Conflict) {
        bytes.append(0x7B)
        key("id", first: true); string(c.id)
        key("type"); string(c.type.rawValue)
        key("recommendation_ids"); strings(c.recommendationIDs)
        key("description"); string(c.description)
        key("severity"); string(c.severity)
        key("conflicting_field"); string(c.conflictingField)
        key("detected_at"); date(c.detectedAt)
        key("resolved"); bool(c.resolved)
        if let v = c.resolution { key("resolution"); string(v) }
        if let v = c.resolvedAt { key("resolved_at"); date(v) }
        bytes.append(0x7D)
    }

    mutating func write(_ r: Recommendation) {
        bytes.append(0x7B)
        key("id", first: true); string(r.id)
        key("agent_id"); string(r.agentID)
        key("agent_type"); string(r.agentType)
        key("customer_id"); string(r.customerID)
        key("type"); string(r.type.rawValue)
        key("title"); string(r.title)
        key("description"); string(r.description)
        key("action"); string(r.action)
        key("risk_level"); string(r.riskLevel.rawValue)
        key("estimated_savings"); number(r.estimatedSavings)
        key("estimated_impact"); string(r.estimatedImpact)
        key("affected_resources"); strings(r.affectedResources)
        key("parameters"); object(r.parameters)
        key("dependencies"); strings(r.dependencies)
        key("priority"); int(r.priority)
        key("confidence"); number(r.confidence)
        if let v = r.createdAt { key("created_at"); date(v) }
        if let v = r.expiresAt { key("expires_at"); date(v) }
        key("status"); string(r.status?.rawValue ?? "")
        if !r.metadata.isEmpty { key("metadata"); object(r.metadata) }
        bytes.append(0x7D)
    }

    mutating func write(_ a: Approval) {
        bytes.append(0x7B)
        key("id", first: true); string(a.id)
        key("recommendation_id"); string(a.recommendationID)
        key("customer_id"); string(a.customerID)
        key("risk_level"); string(a.riskLevel.rawValue)
        key("status"); string(a.status.rawValue)
        key("requested_by"); string(a.requestedBy)
        key("requested_at"); date(a.requestedAt)
        if let v = a.approvedBy { key("approved_by"); string(v) }
        if let v = a.approvedAt { key("approved_at"); date(v) }
        if let v = a.rejectedBy { key("rejected_by"); string(v) }
        if let v = a.rejectedAt { key("rejected_at"); date(v) }
        if let v = a.rejectionReason { key("rejection_reason"); string(v) }
        key("expires_at"); date(a.expiresAt)
        if let v = a.notes { key("notes"); string(v) }
        key("approvers")
        array(a.approvers) { out, vote in
            out.bytes.append(0x7B)
            out.key("user_id", first: true); out.string(vote.userID)
            out.key("at"); out.date(vote.at)
            out.bytes.append(0x7D)
        }
        key("required_approvals"); int(a.requiredApprovals)
        bytes.append(0x7D)
    }

    mutating func write(_ p: ExecutionPlan) {
        bytes.append(0x7B)
        key("id", first: true); string(p.id)
        key("recommendation_id"); string(p.recommendationID)
        key("customer_id"); string(p.customerID)
        key("steps"); array(p.steps) { $0.write($1) }
        key("status"); string(p.status.rawValue)
        key("current_step"); int(p.currentStep)
        key("created_at"); date(p.createdAt)
        if let v = p.startedAt { key("started_at"); date(v) }
        if let v = p.completedAt { key("completed_at"); date(v) }
        if let v = p.rolledBackAt { key("rolled_back_at"); date(v) }
        key("total_duration_ms"); int(p.totalDurationMs)
        if let v = p.metadata { key("metadata"); object(v) }
        if let v = p.rollbackReason { key("rollback_reason"); string(v) }
        if let v = p.cancelReason { key("cancel_reason"); string(v) }
        bytes.append(0x7D)
    }

    mutating func write(_ s: ExecutionStep) {
        bytes.append(0x7B)
        key("id", first: true); string(s.id)
        key("action"); string(s.action)
        key("agent_id"); string(s.agentID)
        key("parameters"); object(s.parameters)
        key("critical"); bool(s.critical)
        key("reversible"); bool(s.reversible)
        key("status"); string(s.status.rawValue)
        if let v = s.result { key("result"); object(v) }
        if let v = s.error { key("error"); string(v) }
        if let v = s.startedAt { key("started_at"); date(v) }
        if let v = s.completedAt { key("completed_at"); date(v) }
        key("duration_ms"); int(s.durationMs)
        if let v = s.rollbackData { key("rollback_data"); object(v) }
        if let v = s.rollbackError { key("rollback_error"); string(v) }
        bytes.append(0x7D)
    }

    mutating func write(_ d: DiscardedRecommendation) {
        bytes.append(0x7B)
        key("id", first: true); string(d.id)
        key("reason"); string(d.reason.rawValue)
        if let v = d.conflictID { key("conflict_id"); string(v) }
        if let v = d.activeID { key("active_id"); string(v) }
        if let v = d.relatedID { key("related_id"); string(v) }
        bytes.append(0x7D)
    }
}

/// The parts of `parallelArray`: each slot is written once, by its own thread, in storage
/// allocated beforehand, and read after all threads are done.
private final class PartOutputs: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<[UInt8]>
    private let count: Int

    init(count: Int) {
        self.count = count
        storage = .allocate(capacity: count)
        storage.initialize(repeating: [], count: count)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    func set(_ part: Int, _ bytes: [UInt8]) { storage[part] = bytes }
    func take(_ part: Int) -> [UInt8] { storage[part] }
}

extension WireJSON {
    // The JSON of stored and replied models, written directly like `encode(_:)` above.
    public static func bytes(_ value: Recommendation) -> [UInt8] { write(640) { $0.write(value) } }
    public static func bytes(_ value: Approval) -> [UInt8] { write(512) { $0.write(value) } }
    public static func bytes(_ value: ExecutionPlan) -> [UInt8] { write(256 + value.steps.count * 400) { $0.write(value) } }
    public static func bytes(_ value: CoordinationResponse) -> [UInt8] { [UInt8](encode(value)) }

    private static func write(_ capacity: Int, _ body: (inout JSONWriter) -> Void) -> [UInt8] {
        var out = JSONWriter()
        out.bytes.reserveCapacity(capacity)
        body(&out)
        return out.bytes
    }
}
