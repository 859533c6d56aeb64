import Foundation
import Testing
import Coordination

/// The writer's public API, as the daemon uses it for envelopes: commas placed by the writer,
/// values spelled as `JSONEncoder` spells them.
@Suite("JSONWriter")
struct JSONWriterTests {
    private func text(_ body: (inout JSONWriter) -> Void) -> String {
        var w = JSONWriter()
        body(&w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @Test("members and elements get exactly the commas they need, at any depth")
    func commas() {
        let json = text { w in
            w.beginObject()
            w.key("a"); w.int(1)
            w.key("b"); w.beginArray(); w.endArray()
            w.key("c"); w.beginArray(); w.int(1); w.beginObject(); w.endObject(); w.beginArray(); w.null(); w.endArray(); w.endArray()
            w.key("d"); w.beginObject(); w.key("e"); w.bool(false); w.key("f"); w.optionalString(nil); w.endObject()
            w.key("g"); w.raw(Array(#"{"x":[1,2]}"#.utf8))
            w.key("h"); w.value(["z": 1, "y": [true, "s"], "x": nil])
            w.endObject()
        }
        #expect(json == #"{"a":1,"b":[],"c":[1,{},[null]],"d":{"e":false,"f":null},"g":{"x":[1,2]},"h":{"x":null,"y":[true,"s"],"z":1}}"#)
    }

    @Test("strings and numbers as JSONEncoder writes them (the daemon's bytes changed here: \\/, \\b, \\f, -0)")
    func spelling() throws {
        let strings = ["a/b", "\u{08}\u{0C}\n\r\t\u{01}\u{1F}", "quote \" backslash \\", "é😀"]
        for s in strings {
            #expect(text { $0.string(s) } == String(decoding: try JSONEncoder().encode(s), as: UTF8.self), "\(s.debugDescription)")
        }
        for d in [0.0, -0.0, 1, -1, 0.1, 1.5e300, 1e15, 123_456_789_012_345, -2.5, .leastNonzeroMagnitude] {
            #expect(text { $0.number(d) } == String(decoding: try JSONEncoder().encode(d), as: UTF8.self), "\(d)")
        }
        #expect(text { $0.number(.nan) } == "null")
        #expect(text { $0.double(.infinity) } == "null")
    }

    @Test("what it writes reads back as the same value")
    func roundTrip() throws {
        var rng = SplitMix64(seed: 17)
        for _ in 0..<200 {
            let value = Self.randomValue(&rng, depth: 0)
            let bytes = text { $0.value(value) }
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes.utf8)) == value, "\(bytes)")
        }
    }

    static func randomValue(_ rng: inout SplitMix64, depth: Int) -> JSONValue {
        switch rng.below(depth > 2 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(rng.below(2) == 0)
        case 2: return .number(Double(Int(rng.below(2_000_001)) - 1_000_000) / Double([1, 10, 1000][rng.below(3)]))
        case 3:
            let characters = Array("ab/\"\\\n\u{01}é😀 ")
            return .string(String((0..<rng.below(6)).map { _ in characters[rng.below(characters.count)] }))
        case 4: return .array((0..<rng.below(4)).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            var members: [String: JSONValue] = [:]
            for k in 0..<rng.below(4) { members["k\(k)/\(rng.below(3))"] = randomValue(&rng, depth: depth + 1) }
            return .object(members)
        }
    }
}
