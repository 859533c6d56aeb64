import Foundation

/// A TCP port on 127.0.0.1 held by a socket that is bound but never listens: a connection to it
/// is refused, and no other process (a redis-server of a suite running in parallel) can take it
/// while it is held. For tests of an unreachable endpoint, where a port "free a moment ago" may
/// already be someone else's.
///
/// `forListener`: the port is for a server of the test's own (a redis-server, a daemon's metrics
/// endpoint), which may bind and listen on it while it is held, provided it sets SO_REUSEADDR
/// as both do (Linux lets sockets that all set it share a port while at most one of them
/// listens). Held until the server is done, the port cannot be taken by anyone else meanwhile,
/// not even between a server's stop and its restart: a bind that does not set SO_REUSEADDR, and
/// every other reservation (their bind to port 0 is made without it), is refused the port.
public final class PortReservation: @unchecked Sendable {
    public let port: Int
    private let lock = NSLock()
    private var fd: Int32

    public init(forListener: Bool = false) throws {
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
        // Set after the bind: the kernel chose a port nobody holds, whatever anyone sets.
        var one: Int32 = 1
        let shared = !forListener || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
        guard bound == 0, named == 0, shared else {
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
