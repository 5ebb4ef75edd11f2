import NIOCore
import NIOPosix

/// Reads one keel-pool stats document (`keel-pool --stats`): connect, read until the master closes, within a
/// deadline, so a stuck pool costs the refresh one timeout and never an event loop's time.
enum PoolStatsClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static let sizeLimit = 4 << 20

    static func fetch(
        _ address: FrontConfiguration.ServerAddress, group: any EventLoopGroup, timeout: TimeAmount
    ) async -> Result<String, Failure> {
        let loop = group.next()
        let promise = loop.makePromise(of: String.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DocumentReader(promise: promise, timeout: timeout))
                }
            }
        let connecting: EventLoopFuture<any Channel>
        switch address {
        case .unix(let path): connecting = bootstrap.connect(unixDomainSocketPath: path)
        case .tcp(let host, let port): connecting = bootstrap.connect(host: host, port: port)
        }
        connecting.whenFailure { promise.fail(Failure(description: "cannot connect to \(address): \($0)")) }
        do {
            let text = try await promise.futureResult.get()
            return .success(text)
        } catch let failure as Failure {
            return .failure(failure)
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }
}

/// Collects what the stats server sends up to its close; fails on the deadline or past the size limit.
final class DocumentReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<String>
    private let timeout: TimeAmount
    private var received: ByteBuffer?
    private var deadline: Scheduled<Void>?
    private var done = false

    init(promise: EventLoopPromise<String>, timeout: TimeAmount) {
        self.promise = promise
        self.timeout = timeout
    }

    func channelActive(context: ChannelHandlerContext) {
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            finish(
                .failure(PoolStatsClient.Failure(description: "no whole answer within \(timeout.prettySeconds)")),
                context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.setOrWriteBuffer(&chunk)
        if let received, received.readableBytes > PoolStatsClient.sizeLimit {
            finish(.failure(PoolStatsClient.Failure(description: "the stats document is over 4 MiB")), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let text = received.map { String(buffer: $0) } ?? ""
        let trimmed = text.utf8.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if trimmed.first == UInt8(ascii: "{"), text.utf8.last(where: { $0 > 0x20 }) == UInt8(ascii: "}") {
            finish(.success(text), context: context)
        } else {
            finish(
                .failure(
                    PoolStatsClient.Failure(
                        description: "the answer is not a JSON object (is this a keel-pool --stats address?)")),
                context: context)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(PoolStatsClient.Failure(description: "\(error)")), context: context)
    }

    private func finish(_ result: Result<String, PoolStatsClient.Failure>, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        deadline?.cancel()
        promise.completeWith(result.mapError { $0 as any Error })
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension DocumentReader: Sendable {}
