import CKeelSys
import KeelApp
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the connections' loop has for the app's loop: new requests and news of running ones, in a list under a
/// mutex, and an eventfd the app's loop watches. The fd is written only when the list goes from empty to not, so
/// a burst of requests costs one wake-up, and the I/O thread never takes the GIL.
final class AsyncInbox: Sendable {
    enum Item {
        case event(AsyncExchange, AsyncEvent)
        /// The worker is done serving: the loop runs the app's shutdown and ends.
        case stop
        /// --harakiri: the loop writes where each of its requests' coroutines (or greenlets) is.
        case dumpStacks
    }

    let fd: Int32
    private let items = Mutex<(list: [Item], signalled: Bool)>(([], false))

    init() throws(AppLoadError) {
        fd = keel_eventfd()
        guard fd >= 0 else { throw AppLoadError("cannot make the async worker's eventfd: \(String(cString: strerror(errno)))") }
    }

    func post(_ item: Item) {
        let signal = items.withLock { items -> Bool in
            items.list.append(item)
            if items.signalled { return false }
            items.signalled = true
            return true
        }
        guard signal else { return }
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    /// Everything posted since the last take; resets the eventfd under the same lock, so no post is missed.
    func take() -> [Item] {
        items.withLock { items in
            var count: UInt64 = 0
            _ = read(fd, &count, 8)
            items.signalled = false
            let taken = items.list
            items.list = []
            return taken
        }
    }
}
