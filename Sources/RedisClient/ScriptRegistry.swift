import Foundation

/// sha1 -> source of every script created in this process.
final class ScriptRegistry: @unchecked Sendable {
    static let shared = ScriptRegistry()
    private let lock = NSLock()
    private var sources: [String: String] = [:]

    func add(_ script: RedisScript) {
        lock.lock()
        if sources[script.sha1] == nil { sources[script.sha1] = script.source }
        lock.unlock()
    }

    func source(sha1: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return sources[sha1]
    }
}
