import Foundation

/// A TCP port on 127.0.0.1 held by a socket that is bound but never listens: a connection to it
/// is refused, and no other process (a redis-server of a suite running in parallel) can take it
/// while it is held. For tests of an unreachable endpoint, where a port "free a moment ago" may
/// already be someone else's.
public final class PortReservation: @unchecked Sendable {
    public let port: Int
    private let lock = NSLock()
    private var fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisServer.StartError(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw RedisServer.StartError(description: "reserving a port: \(message)")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Gives the port up. Idempotent.
    public func release() {
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}
