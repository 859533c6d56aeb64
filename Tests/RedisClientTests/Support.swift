import Foundation
import RedisClient
import TestSupport

/// Starts a server for one test and always stops it.
func withServer<T>(password: String? = nil, arguments: [String] = [], unixSocket: Bool = false, _ body: (RedisServer) throws -> T) throws -> T {
    RedisProcess.ignoreSIGPIPE()
    let server = try RedisServer.start(password: password, arguments: arguments, unixSocket: unixSocket)
    defer { server.stop() }
    return try body(server)
}

func withServer<T>(_ body: (RedisServer) async throws -> T) async throws -> T {
    RedisProcess.ignoreSIGPIPE()
    let server = try RedisServer.start()
    defer { server.stop() }
    return try await body(server)
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Runs `body` on a new OS thread (never the cooperative pool) and returns a way to wait for it.
final class Background<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, any Error>?

    init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread { [self] in
            result = Result { try body() }
            done.signal()
        }
    }

    func wait() throws -> T {
        done.wait()
        return try result!.get()
    }
}
