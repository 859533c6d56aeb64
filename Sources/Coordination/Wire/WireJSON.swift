import Foundation

/// The JSON coders of the wire: snake_case names come from each type's coding keys, dates are
/// `Timestamp`s.
public enum WireJSON {
    /// An encoder writing dates as `Timestamp`s.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.string(from: date))
        }
        return encoder
    }

    /// A decoder reading dates as `Timestamp`s (anything else is an error naming the text).
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.date(from: text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an RFC 3339 timestamp: \(WireLimits.quoted(text))")
            }
            return date
        }
        return decoder
    }
}
