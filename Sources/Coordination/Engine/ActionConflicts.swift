/// Which actions contradict each other, kept as data so a new pair is one line. Pairs apply in
/// both directions (the seed checked only one).
public struct ActionConflicts: Sendable, Equatable {
    /// The seed's pairs of contradictory actions.
    public static let seedPairs: [(String, String)] = [
        ("scale_up", "scale_down"),
        ("scale_up", "terminate"),
        ("scale_down", "add_capacity"),
        ("migrate_to_spot", "migrate_to_on_demand"),
        ("migrate_to_spot", "reserve_instances"),
        ("increase_batch_size", "decrease_batch_size"),
        ("enable_caching", "disable_caching"),
    ]

    /// The seed's table.
    public static let seed = ActionConflicts(pairs: seedPairs)

    /// action -> the actions it contradicts, sorted.
    public let contradicting: [String: [String]]

    /// A table of these pairs, each in both directions (a pair of an action with itself is ignored).
    public init(pairs: [(String, String)]) {
        var table: [String: Set<String>] = [:]
        for (a, b) in pairs where a != b {
            table[a, default: []].insert(b)
            table[b, default: []].insert(a)
        }
        contradicting = table.mapValues { $0.sorted() }
    }

    /// Whether actions `a` and `b` contradict.
    public func contradict(_ a: String, _ b: String) -> Bool {
        contradicting[a]?.contains(b) ?? false
    }
}
