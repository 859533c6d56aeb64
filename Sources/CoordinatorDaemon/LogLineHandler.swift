import Coordination
import Foundation
import Logging

/// One line per log event on standard error, as text or as JSON (`--log-format`).
public struct LogLineHandler: LogHandler {
    public enum Format: Sendable { case text, json }

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: Format

    public init(label: String, format: Format, level: Logger.Level = .info) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let at = Date()
        var line: [UInt8]
        switch format {
        case .json:
            var w = JSONWriter()
            w.beginObject()
            w.key("at"); w.string(Timestamp.string(from: at))
            w.key("level"); w.string(event.level.rawValue)
            w.key("logger"); w.string(label)
            w.key("message"); w.string(event.message.description)
            for key in all.keys.sorted() {
                w.key(key); w.string(all[key]!.description)
            }
            w.endObject()
            line = w.bytes
        case .text:
            // Messages and metadata quote what clients sent (a request_id, a reason): escaped,
            // so that a "\n" in them cannot end this line and forge the next one.
            var text = "\(Timestamp.string(from: at)) \(event.level.rawValue.uppercased()) \(DisplayText.escaped(event.message.description))"
            for key in all.keys.sorted() { text += " \(DisplayText.escaped(key))=\(DisplayText.escaped(all[key]!.description))" }
            line = Array(text.utf8)
        }
        line.append(0x0A)
        // One write(2) per line: lines from several threads never interleave.
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
