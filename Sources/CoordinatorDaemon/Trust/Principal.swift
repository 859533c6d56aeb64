import Coordination
import Crypto
import Foundation

/// Someone the trust file names (PROTOCOL.md section 10): an agent, a person or a tool, with
/// the Ed25519 key its messages are signed with and what it may do.
public struct Principal: Sendable {
    public enum Role: String, Sendable, CaseIterable {
        /// Sends `coordinate` requests and step results; reads and starts its customers' plans.
        case agent
        /// Decides approvals; starts plans and reads anything.
        case approver
        /// Reads plans and approvals.
        case reader
    }

    /// Which customers (or actions) a principal may act on: `"*"` is all, an absent list none.
    public enum Allowance: Sendable, Equatable {
        case all
        case only(Set<String>)

        public func allows(_ value: String) -> Bool {
            switch self {
            case .all: return true
            case .only(let set): return set.contains(value)
            }
        }
    }

    public let id: String
    public let key: VerifyingKey
    public let roles: Set<Role>
    public let customers: Allowance
    public let actions: Allowance

    public init(id: String, key: VerifyingKey, roles: Set<Role>, customers: Allowance = .only([]), actions: Allowance = .only([])) {
        self.id = id
        self.key = key
        self.roles = roles
        self.customers = customers
        self.actions = actions
    }

    public func has(_ role: Role) -> Bool { roles.contains(role) }

    /// An agent of `customer`: may start and read that customer's plans.
    public func isAgent(of customer: String) -> Bool { has(.agent) && customers.allows(customer) }
}

/// An Ed25519 public key, made once when the trust file is read and shared by every intake
/// loop. swift-crypto's key is an immutable value (32 bytes) that does not declare `Sendable`.
public struct VerifyingKey: @unchecked Sendable {
    public let publicKey: Curve25519.Signing.PublicKey

    public init(_ publicKey: Curve25519.Signing.PublicKey) { self.publicKey = publicKey }

    /// From the 32 raw bytes of the key.
    public init(rawRepresentation bytes: [UInt8]) throws {
        publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: bytes)
    }
}
