import NIOCore

/// A timeout whose deadline moves on every request (keep-alive, header, upstream send/read): moving it later costs a
/// clock read, not a scheduled task. One task is scheduled at a time; when it fires it re-checks the deadline and
/// either calls `onFire` or waits again for the rest. Only a deadline earlier than the scheduled one reschedules.
/// Touched only on its event loop.
final class LoopTimer {
    private let loop: any EventLoop
    private var deadline: NIODeadline?
    private var scheduledFor: NIODeadline?
    private var task: Scheduled<Void>?
    /// Called on the loop when a deadline passes; set once by the owner.
    var onFire: (() -> Void)?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    var isArmed: Bool { deadline != nil }

    func arm(in delay: TimeAmount) {
        let due = NIODeadline.now() + delay
        deadline = due
        if let scheduledFor, scheduledFor <= due { return }
        task?.cancel()
        schedule(at: due)
    }

    /// The deadline is dropped; a task already scheduled finds nothing to do when it fires.
    func cancel() {
        deadline = nil
    }

    /// Stops for good (the owner is done): no task outlives it.
    func stop() {
        deadline = nil
        onFire = nil
        task?.cancel()
        task = nil
        scheduledFor = nil
    }

    private func schedule(at due: NIODeadline) {
        scheduledFor = due
        task = loop.assumeIsolated().scheduleTask(deadline: due) { [weak self] in self?.fired() }
    }

    private func fired() {
        scheduledFor = nil
        task = nil
        guard let deadline else { return }
        if deadline > .now() {
            schedule(at: deadline)
            return
        }
        self.deadline = nil
        onFire?()
    }
}
