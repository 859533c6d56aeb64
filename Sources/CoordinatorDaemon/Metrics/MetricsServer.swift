import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /metrics` in Prometheus text format over swift-nio's HTTP/1 stack, on one
/// event-loop thread of its own; any other path is 404, any other method on it 405.
/// A scrape only renders the registry: it never touches Redis.
///
/// No client of the port can grow the daemon's memory by more than a few MiB or keep a scrape
/// from being answered (PROTOCOL.md section 7):
/// - at most `maxConnections` connections are held; when all are taken, a new one makes room by
///   closing the oldest that holds no complete request (a half-sent request, an idle keep-alive
///   connection). Only when every one holds an answer its client has not taken (a client that
///   stopped reading) does the oldest of those go instead, so that such clients cannot lock the
///   port either;
/// - a connection is closed when it has been idle (no complete request, or an answer not taken)
///   for `idleTimeout`;
/// - one request is answered at a time: a request that arrives while the answer to the previous
///   one is still unwritten (a client pipelining without reading) closes the connection, so
///   answers never pile up in the daemon.
final class MetricsServer: Sendable {
    static let maxConnections = 64
    static let idleTimeout = TimeAmount.seconds(10)

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// The port actually bound.
    let port: Int

    /// Binds `host:port` (port 0 picks a free one); throws when the address cannot be bound.
    init(host: String, port: Int, metrics: DaemonMetrics) throws {
        // One thread: the listening socket and every connection share its event loop, which is
        // what makes the connection table below safe without a lock.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connections = MetricsConnections(limit: Self.maxConnections)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let slot = connections.admit(channel)
                    // No pipelining assistance: it would queue pipelined requests (and their
                    // answers) without bound; MetricsHTTPHandler closes such a client instead.
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics, slot: slot))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        self.port = channel.localAddress?.port ?? port
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// The open connections, oldest first. Used only on the server's one event loop.
private final class MetricsConnections: @unchecked Sendable {
    private let limit: Int
    private var slots: [MetricsSlot] = []
    private var serial: UInt64 = 0

    init(limit: Int) { self.limit = limit }

    /// A slot for `channel`, after closing the oldest connection without a complete request
    /// when all are taken (or, when every one is still being answered, the oldest of all: an
    /// answer is written at once unless its client stopped reading).
    func admit(_ channel: any Channel) -> MetricsSlot {
        channel.eventLoop.preconditionInEventLoop()
        if slots.count >= limit, !slots.isEmpty {
            // slots is in arrival order: the first match is the oldest.
            let evicted = slots.remove(at: slots.firstIndex { !$0.answering } ?? 0)
            evicted.channel.close(promise: nil)
        }
        serial += 1
        let slot = MetricsSlot(channel: channel, serial: serial)
        slots.append(slot)
        let id = slot.serial
        channel.closeFuture.whenComplete { _ in
            channel.eventLoop.assertInEventLoop()
            self.release(id)
        }
        return slot
    }

    private func release(_ serial: UInt64) {
        slots.removeAll { $0.serial == serial }
    }
}

/// One connection in the table: whether it holds a complete request whose answer is not yet
/// written (such a connection is never closed to make room).
private final class MetricsSlot {
    let channel: any Channel
    let serial: UInt64
    var answering = false

    init(channel: any Channel, serial: UInt64) {
        self.channel = channel
        self.serial = serial
    }
}

/// One HTTP connection: answers a request once its end has arrived, one at a time.
private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: DaemonMetrics
    private let slot: MetricsSlot
    private var head: HTTPRequestHead?
    private var idle: Scheduled<Void>?
    private var closed = false

    init(metrics: DaemonMetrics, slot: MetricsSlot) {
        self.metrics = metrics
        self.slot = slot
    }

    func handlerAdded(context: ChannelHandlerContext) { armIdleTimer(context.channel) }

    func handlerRemoved(context: ChannelHandlerContext) {
        idle?.cancel()
        idle = nil
    }

    /// Closes the connection unless it makes progress (a complete request arrives, or the
    /// answer is written) within `idleTimeout`. Bytes that do not complete a request do not
    /// count: a request sent a byte at a time is idle.
    private func armIdleTimer(_ channel: any Channel) {
        idle?.cancel()
        idle = channel.eventLoop.scheduleTask(in: MetricsServer.idleTimeout) { channel.close(promise: nil) }
    }

    private func close(_ channel: any Channel) {
        closed = true
        idle?.cancel()
        idle = nil
        channel.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // A new request while the previous answer is still unwritten: the client sends
            // without reading. Closed, never buffered.
            if slot.answering {
                close(context.channel)
                return
            }
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let status: HTTPResponseStatus
        var body: [UInt8]
        var contentType = "text/plain; charset=utf-8"
        if path != "/metrics" {
            status = .notFound
            body = Array("not found: only /metrics is served\n".utf8)
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("method not allowed: use GET\n".utf8)
        } else {
            status = .ok
            body = metrics.exposition()
            contentType = "text/plain; version=0.0.4; charset=utf-8"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if head.method == .HEAD { body = [] }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let channel = context.channel
        slot.answering = true
        // The answer must be taken within the idle timeout too.
        armIdleTimer(channel)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        // Completes once the whole answer is in the kernel: at once, unless the client stopped
        // reading and its socket buffers are full.
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [self] result in
            slot.answering = false
            if keepAlive, case .success = result, !closed {
                armIdleTimer(channel)
            } else {
                close(channel)
            }
        }
    }
}
