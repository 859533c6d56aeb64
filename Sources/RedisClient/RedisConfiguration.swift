/// Where and how to connect.
public struct RedisConfiguration: Sendable, Equatable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// A host name or IP address and a TCP port.
        case tcp(host: String, port: Int)
        /// A unix-domain socket.
        case unix(path: String)

        /// "host:port" or the socket path: the prefix of `.connection` error messages.
        public var description: String {
            switch self {
            case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): return path
            }
        }
    }

    /// Where the server listens.
    public var endpoint: Endpoint
    /// The ACL user for AUTH (Redis 6+); nil authenticates as `default` when a password is given.
    public var username: String?
    /// The password for AUTH; nil sends no AUTH.
    public var password: String?
    /// SELECTed after connecting when not 0.
    public var database: Int
    /// Seconds to wait for the TCP/unix connect; commands themselves have no socket timeout.
    public var connectTimeout: Double
    /// TCP keep-alive (redisEnableKeepAlive).
    public var keepAlive: Bool
    /// Redis Cluster mode: the seed nodes the cluster's topology is first asked of (a
    /// `redis+cluster://` URL's hosts, or `endpoint` alone after `clustered()`); nil for one
    /// Redis. `endpoint` is the first seed. See `RedisClusterClient`.
    public var clusterSeeds: [Endpoint]? = nil

    /// Whether this configuration names a Redis Cluster.
    public var isCluster: Bool { clusterSeeds != nil }

    /// This configuration in cluster mode, `endpoint` its one seed (a `--cluster` flag given
    /// with a plain `redis://` URL). A cluster has only database 0.
    public func clustered() throws(RedisError) -> RedisConfiguration {
        guard database == 0 else { throw .invalidURL("\(redactedURL): Redis Cluster has only database 0") }
        var copy = self
        if copy.clusterSeeds == nil { copy.clusterSeeds = [endpoint] }
        return copy
    }

    /// A configuration; the defaults are a local server on port 6379, database 0, no AUTH.
    public init(
        endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379), username: String? = nil,
        password: String? = nil, database: Int = 0, connectTimeout: Double = 5, keepAlive: Bool = true
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.keepAlive = keepAlive
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` (user and password percent-decoded,
    /// port 6379 by default, IPv6 hosts in brackets) and `unix:///path/redis.sock[?db=N]`
    /// (also `password=` and `user=` query items, percent-decoded), and for a Redis Cluster
    /// `redis+cluster://[[user]:password@]host[:port][,host[:port]…]` (the seed nodes; database 0
    /// only).
    public init(url: String) throws(RedisError) {
        self.init()
        if let rest = url.dropPrefix("redis+cluster://") {
            try parseCluster(rest, url: url)
        } else if let rest = url.dropPrefix("redis://") {
            try parseTCP(rest, url: url)
        } else if let rest = url.dropPrefix("unix://") {
            try parseUnix(rest, url: url)
        } else if url.hasPrefix("rediss://") {
            throw .invalidURL("\(url): TLS (rediss://) is not supported")
        } else {
            throw .invalidURL("\(url): expected redis://[user:password@]host[:port][/db], unix:///path/to/redis.sock[?db=N] or redis+cluster://[user:password@]host:port[,host:port…]")
        }
    }

    private mutating func parseTCP(_ rest: Substring, url: String) throws(RedisError) {
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }
        if path.contains("?") || authority.contains("?") {
            throw .invalidURL("\(url): query parameters are not supported in redis:// URLs")
        }
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = try Self.percentDecode(userInfo[..<colon], url: url)
                username = user.isEmpty ? nil : user
                password = try Self.percentDecode(userInfo[userInfo.index(after: colon)...], url: url)
            } else {
                // redis://password@host is how some tools spell a bare password.
                let user = try Self.percentDecode(userInfo, url: url)
                password = user.isEmpty ? nil : user
            }
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw .invalidURL("\(url): unterminated IPv6 address")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL("\(url): unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw .invalidURL("\(url): missing host") }
        var port = 6379
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw .invalidURL("\(url): port must be a number from 1 to 65535, not \"\(portText)\"")
            }
            port = p
        }
        endpoint = .tcp(host: String(host), port: port)
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else {
                throw .invalidURL("\(url): database must be a non-negative number, not \"\(path)\"")
            }
            database = db
        }
    }

    /// Each seed is parsed as a `redis://` URL with the same user information and path.
    private mutating func parseCluster(_ rest: Substring, url: String) throws(RedisError) {
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[slash...]
        }
        var userInfo: Substring = ""
        if let at = authority.lastIndex(of: "@") {
            userInfo = authority[...at]
            authority = authority[authority.index(after: at)...]
        }
        var seeds: [Endpoint] = []
        for host in authority.split(separator: ",", omittingEmptySubsequences: false) {
            var seed = RedisConfiguration()
            try seed.parseTCP(Substring(userInfo + host + path), url: url)
            if seeds.isEmpty { self = seed }
            seeds.append(seed.endpoint)
        }
        guard database == 0 else { throw .invalidURL("\(url): Redis Cluster has only database 0") }
        clusterSeeds = seeds
    }

    private mutating func parseUnix(_ rest: Substring, url: String) throws(RedisError) {
        var path = rest
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            path = rest[..<q]
            query = rest[rest.index(after: q)...]
        }
        guard path.hasPrefix("/"), path.count > 1 else {
            throw .invalidURL("\(url): expected an absolute socket path, as in unix:///var/run/redis.sock")
        }
        endpoint = .unix(path: try Self.percentDecode(path, url: url))
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0]
            let value = parts.count > 1 ? try Self.percentDecode(parts[1], url: url) : ""
            switch name {
            case "db":
                guard let db = Int(value), db >= 0 else {
                    throw .invalidURL("\(url): db must be a non-negative number, not \"\(value)\"")
                }
                database = db
            case "password": password = value
            case "user", "username": username = value.isEmpty ? nil : value
            default: throw .invalidURL("\(url): unknown query parameter \"\(name)\" (known: db, password, user)")
            }
        }
    }

    /// The URL form with the password replaced by "***", for logs.
    public var redactedURL: String {
        switch endpoint {
        case .tcp(let host, let port):
            var auth = ""
            if let password {
                auth = "\(Self.percentEncode(username ?? "")):\(password.isEmpty ? "" : "***")@"
            } else if let username {
                auth = "\(Self.percentEncode(username))@"
            }
            if let clusterSeeds {
                return "redis+cluster://\(auth)" + clusterSeeds.map(\.description).joined(separator: ",")
            }
            let h = host.contains(":") ? "[\(host)]" : host
            return "redis://\(auth)\(h):\(port)/\(database)"
        case .unix(let path):
            var query: [String] = []
            if database != 0 { query.append("db=\(database)") }
            if let username { query.append("user=\(Self.percentEncode(username))") }
            if password != nil { query.append("password=***") }
            return "unix://\(path)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        }
    }

    static func percentDecode(_ text: Substring, url: String) throws(RedisError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2, let hi = hexValue(utf8.removeFirst()), let lo = hexValue(utf8.removeFirst()) else {
                    throw .invalidURL("\(url): bad percent-encoding in \"\(text)\"")
                }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(byte)
            }
        }
        guard let s = decodeUTF8(bytes) else { throw .invalidURL("\(url): percent-encoding is not UTF-8 in \"\(text)\"") }
        return s
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}

extension String {
    fileprivate func dropPrefix(_ prefix: String) -> Substring? {
        hasPrefix(prefix) ? self[index(startIndex, offsetBy: prefix.count)...] : nil
    }
}
