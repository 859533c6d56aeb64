import Coordination
import Crypto
import Foundation

/// A principal's private key on disk: base64 of the 32-byte Ed25519 seed, one line, readable
/// by its owner only (what `coordinatord keys generate` writes and `--key FILE` reads).
public enum SigningKeyFile {
    public enum LoadError: Error, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case malformed(path: String)
        case exists(path: String)
        case unwritable(path: String, reason: String)
        /// Its group or others may read or write it (mode & 0o077), as ssh refuses a private key.
        case tooOpen(path: String, mode: UInt32)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): return "key file \(path): cannot be read (\(reason))"
            case .malformed(let path): return "key file \(path): expected base64 of a 32-byte Ed25519 seed"
            case .exists(let path): return "key file \(path): already exists; not overwritten"
            case .unwritable(let path, let reason): return "key file \(path): cannot be written (\(reason))"
            case .tooOpen(let path, let mode):
                let octal = String(mode & 0o7777, radix: 8)
                let shown = String(repeating: "0", count: max(0, 4 - octal.count)) + octal
                return "key file \(path): permissions \(shown) are too open: its group or others can access it, and a private key must be accessible by its owner only (chmod 600 \(path))"
            }
        }
    }

    /// The private key in `path`, refused (as ssh refuses a private key) when the file's group or
    /// others have any access to it: a key others could read may already be someone else's too.
    public static func load(path: String) throws(LoadError) -> Curve25519.Signing.PrivateKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        // The mode of the file opened, not of whatever the path names a moment later.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        let mode = UInt32(info.st_mode)
        guard mode & 0o170000 == 0o100000 else { throw .unreadable(path: path, reason: "not a regular file") }
        if mode & 0o077 != 0 { throw .tooOpen(path: path, mode: mode) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while data.count <= 64 * 1024 {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let seed = TrustFile.decodeKey(text), seed.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw .malformed(path: path)
        }
        return key
    }

    /// A new key written to `path` (created with mode 0600; an existing file is left alone).
    public static func generate(path: String) throws(LoadError) -> Curve25519.Signing.PrivateKey {
        let key = Curve25519.Signing.PrivateKey()
        let line = Array((key.rawRepresentation.base64EncodedString() + "\n").utf8)
        // O_EXCL: never replace a key someone may still be using; 0600 from the start, not chmod after.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 {
            let code = errno
            if code == EEXIST { throw .exists(path: path) }
            throw .unwritable(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(path)
            throw .unwritable(path: path, reason: reason)
        }
        return key
    }

    /// The trust-file entry of `id` with `key`'s public half, to paste under `principals`.
    public static func trustEntry(id: String, key: Curve25519.Signing.PrivateKey, roles: [String] = []) -> String {
        var w = JSONWriter()
        w.string(id)
        var entry = JSONWriter()
        entry.beginObject()
        entry.key("public_key"); entry.string(key.publicKey.rawRepresentation.base64EncodedString())
        entry.key("roles")
        entry.beginArray()
        for role in roles { entry.string(role) }
        entry.endArray()
        entry.endObject()
        return String(decoding: w.bytes, as: UTF8.self) + ": " + String(decoding: entry.bytes, as: UTF8.self)
    }
}

/// Signs messages as one principal, shareable across threads (swift-crypto's private key is an
/// immutable value that does not declare `Sendable`).
public final class MessageSigner: @unchecked Sendable {
    public let kid: String
    private let key: Curve25519.Signing.PrivateKey

    public init(kid: String, key: Curve25519.Signing.PrivateKey) {
        self.kid = kid
        self.key = key
    }

    /// The compact JWS of `payload`.
    public func sign(_ payload: [UInt8]) throws -> [UInt8] {
        try JWS.sign(payload: payload, kid: kid, privateKey: key)
    }
}
