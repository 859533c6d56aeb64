import Foundation

/// The seed's simulated actions (`executeStep` / `rollbackStep`): their results, rollback
/// data and durations. Any other action succeeds after a short delay with an empty result.
public enum SimulatedActions {
    /// What a simulated step returns.
    public struct Outcome: Sendable, Equatable {
        /// The step's result, as the seed's actions return it.
        public var result: [String: JSONValue]
        /// What undoing the step needs.
        public var rollbackData: [String: JSONValue]
        /// How long the seed took, in seconds (scaled by `--sim-speed`).
        public var seedDuration: TimeInterval
    }

    /// The seed's result and rollback data of `action` (snapshot ids drawn from `ids`).
    public static func outcome(for action: String, ids: inout some IDGenerator) -> Outcome {
        switch action {
        case "take_snapshot":
            let snapshot = "snap-" + ids.next().prefix(8)
            return Outcome(result: ["snapshot_id": .string(snapshot), "size_gb": 100],
                           rollbackData: ["snapshot_id": .string(snapshot)], seedDuration: 0.5)
        case "scale_resources":
            return Outcome(result: ["previous_count": 5, "new_count": 3, "scaled_down": 2],
                           rollbackData: ["restore_count": 5], seedDuration: 1)
        case "migrate_workload":
            return Outcome(result: ["migrated_instances": 3, "status": "completed"], rollbackData: [:], seedDuration: 2)
        case "validate_quality":
            return Outcome(result: ["quality_score": 0.95, "passed": true], rollbackData: [:], seedDuration: 0.5)
        default:
            return Outcome(result: [:], rollbackData: [:], seedDuration: 0.1)
        }
    }

    /// How long undoing `action` takes in the seed, in seconds.
    public static func rollbackDuration(for action: String) -> TimeInterval {
        switch action {
        case "take_snapshot": 0.2
        case "scale_resources": 0.5
        case "migrate_workload": 1
        default: 0
        }
    }
}
