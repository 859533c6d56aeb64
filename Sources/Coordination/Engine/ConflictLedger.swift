/// The conflicts of one coordination: listed up to `maxListed` (in the order found, which the
/// conflicts' identifiers follow), counted beyond. Resolution adds the conflicts that decided a
/// discard even past the cap, so every discard can name its conflict.
struct ConflictLedger {
    /// A listed conflict between nodes `a` and `b` (`a` a request node that ranks better, or
    /// `b` active), or a dependency conflict of `a`.
    struct Entry: Sendable {
        var type: ConflictType
        var a: Int
        var b: Int
        /// A dependency conflict's cycle (in `cycles`) or missing id (in `missingIDs`); else -1.
        var extra: Int = -1
        var isCycle = false
    }

    let maxListed: Int
    var entries: [Entry] = []
    /// Where each listed pair conflict is in `entries`, by `key`.
    var index = IntTable(capacity: 16)
    /// Dependency cycles' members (rank order).
    var cycles: [[Int]] = []
    var missingIDs: [String] = []
    /// Conflicts found, listed or not.
    var detected = 0
    /// More were found than are listed, or counting stopped early.
    var truncated = false
    /// Request nodes of rank below this had their row enumerated (all of them unless the work
    /// budget ran out).
    var countedRanks = Int.max

    init(maxListed: Int) { self.maxListed = maxListed }

    /// One number per unordered pair and kind of pair conflict.
    static func key(_ type: ConflictType, _ a: Int, _ b: Int) -> Int {
        let (x, y) = a < b ? (a, b) : (b, a)
        let t = type == .resource ? 0 : 1
        return (t << 62) | (x << 31) | y
    }

    /// Records a pair conflict `a` (a request node) with `b`, where `a` ranks better or `b` is active.
    @inline(__always)
    mutating func record(_ type: ConflictType, _ a: Int, _ b: Int) {
        detected += 1
        if entries.count < maxListed {
            index.set(Self.key(type, a, b), entries.count)
            entries.append(Entry(type: type, a: a, b: b))
        } else {
            truncated = true
        }
    }

    /// Lists a dependency conflict: `node` depends on `missing`, known nowhere.
    mutating func recordMissing(_ node: Int, _ missing: String) -> Int {
        entries.append(Entry(type: .dependency, a: node, b: -1, extra: missingIDs.count))
        missingIDs.append(missing)
        detected += 1
        return entries.count - 1
    }

    /// Lists a dependency cycle (its members in rank order).
    mutating func recordCycle(_ members: [Int]) -> Int {
        entries.append(Entry(type: .dependency, a: members[0], b: -1, extra: cycles.count, isCycle: true))
        cycles.append(members)
        detected += 1
        return entries.count - 1
    }
}
