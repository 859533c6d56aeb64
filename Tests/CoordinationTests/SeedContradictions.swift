@testable import Coordination

/// The seed's table of contradictory actions, written out here from the seed itself
/// (`checkActionConflict` in ../shared/seed/FOUNDATION-0.8-coordination.txt) and never read from
/// `ActionConflicts`: a pair deleted from (or added to) the code must fail a test.
///
///     contradictory := map[string][]string{
///         "scale_up":    {"scale_down", "terminate"},
///         "scale_down":  {"scale_up", "add_capacity"},
///         "migrate_to_spot": {"migrate_to_on_demand", "reserve_instances"},
///         "increase_batch_size": {"decrease_batch_size"},
///         "enable_caching": {"disable_caching"},
///     }
///
/// The seed looked up only `rec1.Action`'s row, so `terminate` then `scale_up` did not
/// contradict while `scale_up` then `terminate` did. That was a bug: a contradiction holds in
/// both directions (PROTOCOL.md 2.2, "checked in both directions").
enum SeedContradictions {
    /// The seed's rows as it wrote them (one direction).
    static let rows: [String: [String]] = [
        "scale_up": ["scale_down", "terminate"],
        "scale_down": ["scale_up", "add_capacity"],
        "migrate_to_spot": ["migrate_to_on_demand", "reserve_instances"],
        "increase_batch_size": ["decrease_batch_size"],
        "enable_caching": ["disable_caching"],
    ]

    /// The seed's rows made symmetric: action -> the actions it contradicts, sorted.
    static let symmetric: [String: [String]] = {
        var table: [String: Set<String>] = [:]
        for (action, others) in rows {
            for other in others {
                table[action, default: []].insert(other)
                table[other, default: []].insert(action)
            }
        }
        return table.mapValues { $0.sorted() }
    }()

    /// Every action the seed names, sorted.
    static let actions: [String] = Set(rows.keys).union(rows.values.joined()).sorted()

    static func contradict(_ a: String, _ b: String) -> Bool {
        symmetric[a]?.contains(b) ?? false
    }
}
