// Ranking (PROTOCOL.md section 2.2): priority, savings, confidence (higher first), then lower
// risk, then id.

extension CoordinationRun {
    /// What ranking compares, gathered so the sort reads one array.
    struct RankKey: Sendable {
        var priority: Int
        var savings: Double
        var confidence: Double
        var risk: RiskLevel
        var index: Int
    }

    /// Ranking keys, best first: priority, savings, confidence (higher first), then lower
    /// risk, then id.
    ///
    /// The same order as sorting with that comparison, faster: a radix sort on priority and the
    /// leading 48 bits of savings, then the comparison within runs that tie on those. (Plain
    /// comparison sort when a value is NaN or priorities span too wide a range.)
    static func ranked(_ keys: [RankKey], ids: [String]) -> [RankKey] {
        func better(_ a: RankKey, _ b: RankKey) -> Bool {
            if a.priority != b.priority { return a.priority > b.priority }
            if a.savings != b.savings { return a.savings > b.savings }
            if a.confidence != b.confidence { return a.confidence > b.confidence }
            if a.risk != b.risk { return a.risk < b.risk }
            return ids[a.index] < ids[b.index]
        }
        var lowest = Int.max, highest = Int.min, numbers = true
        for key in keys {
            lowest = min(lowest, key.priority)
            highest = max(highest, key.priority)
            if key.savings.isNaN || key.confidence.isNaN { numbers = false }
        }
        let (span, overflow) = highest.subtractingReportingOverflow(lowest)
        guard keys.count > 256, numbers, !overflow, span < 1 << 16 else { return keys.sorted(by: better) }
        // Ascending radix key: higher priority first, then higher savings (-0 counts as 0).
        var items = [(key: UInt64, at: Int)]()
        items.reserveCapacity(keys.count)
        for (at, key) in keys.enumerated() {
            let bits = (key.savings + 0).bitPattern
            let ascending = bits >> 63 == 0 ? bits | 1 << 63 : ~bits
            items.append((UInt64(highest - key.priority) << 48 | (~ascending) >> 16, at))
        }
        var other = items
        var counts = [Int](repeating: 0, count: 256)
        for shift in stride(from: UInt64(0), to: 64, by: 8) {
            for k in counts.indices { counts[k] = 0 }
            for item in items { counts[Int(truncatingIfNeeded: item.key >> shift) & 0xFF] += 1 }
            if counts.contains(items.count) { continue }  // every key has this byte
            var sum = 0
            for k in counts.indices { (counts[k], sum) = (sum, sum + counts[k]) }
            for item in items {
                let byte = Int(truncatingIfNeeded: item.key >> shift) & 0xFF
                other[counts[byte]] = item
                counts[byte] += 1
            }
            swap(&items, &other)
        }
        var result = items.map { keys[$0.at] }
        var start = 0
        while start < items.count {
            var end = start + 1
            while end < items.count && items[end].key == items[start].key { end += 1 }
            if end - start > 1 { result[start..<end].sort(by: better) }
            start = end
        }
        return result
    }

}
