import NIOCore
import Synchronization

/// `max_connections` across every listener and loop: at the limit the server channels stop accepting (their reads
/// are held) so new connections wait in the kernel's backlog, as nginx does when `worker_connections` run out,
/// instead of being accepted and dropped.
final class ConnectionCounter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)
    private let waiting = Mutex<[@Sendable () -> Void]>([])
    /// Open connections, so shutdown can close what is left when the grace period ends.
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    init(limit: Int) {
        self.limit = limit
    }

    var current: Int { open.load(ordering: .relaxed) }

    func opened(_ channel: any Channel) {
        open.add(1, ordering: .relaxed)
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func closed(_ channel: any Channel) {
        channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
        let now = open.subtract(1, ordering: .relaxed).newValue
        if now < limit {
            let resume = waiting.withLock { list -> [@Sendable () -> Void] in
                defer { list.removeAll() }
                return list
            }
            resume.forEach { $0() }
        }
    }

    /// Closes every connection still open (the end of a graceful shutdown's grace period).
    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }

    /// Registers a resumption for when a connection closes; false when there is room already.
    func waitForRoom(_ resume: @escaping @Sendable () -> Void) -> Bool {
        waiting.withLock { list in
            guard open.load(ordering: .relaxed) >= limit else { return false }
            list.append(resume)
            return true
        }
    }
}

/// On a server channel: counts accepted connections and holds `read` (accepting) while the counter is full.
final class ConnectionLimiter: ChannelDuplexHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel
    typealias OutboundIn = Never

    private let counter: ConnectionCounter
    private var readHeld = false
    private var warned = false

    init(counter: ConnectionCounter) {
        self.counter = counter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        counter.opened(child)
        let counter = self.counter
        child.closeFuture.whenComplete { _ in counter.closed(child) }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let bound = NIOLoopBound(self, eventLoop: loop)
        let full = counter.waitForRoom {
            loop.execute {
                let handler = bound.value
                guard handler.readHeld else { return }
                handler.readHeld = false
                boundContext.value.read()
            }
        }
        if full {
            if !warned {
                warned = true
                FrontLog.warning("\(counter.limit) connections open (limits.max_connections): new connections wait in the listen backlog")
            }
            readHeld = true
            return
        }
        warned = false
        context.read()
    }
}

@available(*, unavailable)
extension ConnectionLimiter: Sendable {}
