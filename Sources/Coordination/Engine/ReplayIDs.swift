/// Hands out identifiers drawn beforehand, in order.
struct ReplayIDs: IDGenerator {
    let ids: [String]
    var used = 0

    mutating func next() -> String {
        defer { used += 1 }
        return ids[used]
    }
}
