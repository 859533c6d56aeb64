import Foundation

/// A request that breaks a rule, naming the field by its JSON path:
/// `recommendations[3].confidence: must be between 0 and 1`.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field's JSON path (`recommendations[3].confidence`); empty for the whole message.
    public var path: String
    /// What is wrong with it, for a person.
    public var message: String
    /// The field is over a size limit (`too_large`) rather than malformed (`invalid_request`).
    public var tooLarge: Bool

    /// An error at `path`; `tooLarge` when a size limit, not the shape, was broken.
    public init(path: String, message: String, tooLarge: Bool = false) {
        self.path = WireLimits.boundedMessage(path)
        self.message = WireLimits.boundedMessage(message)
        self.tooLarge = tooLarge
    }

    /// `path: message`, or the message alone for the whole message.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Reads `coordinate` requests off the wire: the fast direct parser, falling back to
/// `JSONDecoder` whenever it is unsure, then the validation rules.
public enum RequestDecoding {
    /// Decodes and validates a `coordinate` request (PROTOCOL.md section 2.2): required fields,
    /// known enum values, finite numbers, the confidence range, unique ids, no self-dependency.
    /// Recommendations without a `customer_id` get the request's.
    public static func coordinationRequest(from bytes: [UInt8]) throws(ValidationError) -> CoordinationRequest {
        var request: CoordinationRequest
        if let fast = FastRequestParser.parse(bytes) {
            request = fast
        } else {
            // Errors and anything unusual: the decoder's own answer.
            request = try decodeWithJSONDecoder(bytes)
        }
        try validate(&request)
        return request
    }

    /// `coordinationRequest(from:)` without the fast path (`JSONDecoder` only), before `validate`.
    static func decodeWithJSONDecoder(_ bytes: [UInt8]) throws(ValidationError) -> CoordinationRequest {
        do {
            return try WireJSON.decoder().decode(CoordinationRequest.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw validationError(error)
        } catch {
            throw ValidationError(path: "", message: "\(error)")
        }
    }

    /// The rules that span fields, and the limits of section 2.5 (identifiers, actions, affected
    /// resources, text and maps); fills in defaults taken from the request. How many affected
    /// resources a request may list is the daemon's limit (`WireLimits.checkResourceCounts`).
    public static func validate(_ request: inout CoordinationRequest) throws(ValidationError) {
        try WireLimits.checkIdentifier(request.customerID, path: "customer_id")
        var seen: [String: Int] = [:]
        seen.reserveCapacity(request.recommendations.count)
        for index in request.recommendations.indices {
            // Fields, not a copy of the recommendation (a copy retains a dozen objects).
            let id = request.recommendations[index].id
            let customerID = request.recommendations[index].customerID
            try checkLimits(of: request.recommendations[index], at: index)
            if let first = seen.updateValue(index, forKey: id) {
                throw ValidationError(path: "recommendations[\(index)].id",
                                      message: "duplicate id \(WireLimits.quoted(id)) (also recommendations[\(first)])")
            }
            if customerID.isEmpty {
                request.recommendations[index].customerID = request.customerID
            } else if customerID != request.customerID {
                throw ValidationError(path: "recommendations[\(index)].customer_id",
                                      message: "\(WireLimits.quoted(customerID)) differs from the request's customer_id \(WireLimits.quoted(request.customerID))")
            }
            for (d, dependency) in request.recommendations[index].dependencies.enumerated() where dependency == id {
                throw ValidationError(path: "recommendations[\(index)].dependencies[\(d)]",
                                      message: "a recommendation cannot depend on itself")
            }
        }
    }

    /// Section 2.5 for one recommendation: identifiers first (a bad one is `invalid_request`),
    /// then the sizes of its free text and maps (`too_large`).
    private static func checkLimits(of rec: Recommendation, at index: Int) throws(ValidationError) {
        let path = "recommendations[\(index)]"
        try WireLimits.checkIdentifier(rec.id, path: "\(path).id")
        try WireLimits.checkIdentifier(rec.agentID, path: "\(path).agent_id")
        if !rec.customerID.isEmpty { try WireLimits.checkIdentifier(rec.customerID, path: "\(path).customer_id") }
        // The paths are built only for an error: per resource, building one cost more than the check.
        if let problem = WireLimits.actionProblem(rec.action) { throw ValidationError(path: "\(path).action", message: problem) }
        for (d, dependency) in rec.dependencies.enumerated() {
            try WireLimits.checkIdentifier(dependency, path: "\(path).dependencies[\(d)]")
        }
        for (r, resource) in rec.affectedResources.enumerated() {
            if let problem = WireLimits.identifierProblem(resource, maxBytes: WireLimits.resourceMaxBytes) {
                throw ValidationError(path: "\(path).affected_resources[\(r)]", message: problem)
            }
        }
        try WireLimits.checkText(rec.title, path: "\(path).title")
        try WireLimits.checkText(rec.description, path: "\(path).description")
        try WireLimits.checkText(rec.estimatedImpact, path: "\(path).estimated_impact")
        try WireLimits.checkMap(rec.parameters, path: "\(path).parameters")
        try WireLimits.checkMap(rec.metadata, path: "\(path).metadata")
    }

    /// A decoding error as a ValidationError naming the field by its JSON path.
    public static func validationError(_ error: DecodingError) -> ValidationError {
        switch error {
        case .keyNotFound(let key, let context):
            return ValidationError(path: path(context.codingPath + [key]), message: "required")
        case .valueNotFound(_, let context):
            return ValidationError(path: path(context.codingPath), message: "must not be null")
        case .typeMismatch(let type, let context):
            return ValidationError(path: path(context.codingPath), message: "expected \(typeName(type))")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return ValidationError(path: "", message: "not valid JSON: \(context.debugDescription)")
            }
            return ValidationError(path: path(context.codingPath), message: context.debugDescription)
        @unknown default:
            return ValidationError(path: "", message: "\(error)")
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default:
            if "\(type)".hasPrefix("Array") { "an array" }
            else if "\(type)".hasPrefix("Dictionary") { "an object" }
            else { "a value of type \(type)" }
        }
    }
}
