import NIOCore

/// nginx's `open_file_cache`, one per event loop as nginx keeps one per worker (no lock): opened files with their
/// size and validators, by root and path. An entry is re-opened once `valid` has passed since it was opened (a file
/// replaced on disk is served new after that), dropped when unused for `inactive`, and at most `max` are kept
/// (the least recently used goes first). Off unless `[open_file_cache]` is configured.
final class OpenFileCache {
    private struct Entry {
        let file: StaticFile
        let opened: NIODeadline
        var used: NIODeadline
    }

    private var entries: [String: Entry] = [:]
    private var settings: FrontConfiguration.OpenFileCache?

    init() {}

    var count: Int { entries.count }

    /// The cached file for `key`, if it is still within `valid` and the cache is on with these settings.
    func file(for key: String, settings: FrontConfiguration.OpenFileCache, now: NIODeadline) -> StaticFile? {
        if settings != self.settings { reset(to: settings) }
        guard var entry = entries[key] else { return nil }
        guard now - entry.opened < settings.valid else {
            entries[key] = nil
            return nil
        }
        entry.used = now
        entries[key] = entry
        return entry.file
    }

    func store(_ file: StaticFile, for key: String, settings: FrontConfiguration.OpenFileCache, now: NIODeadline) {
        if settings != self.settings { reset(to: settings) }
        if entries[key] == nil, entries.count >= settings.max { makeRoom(settings, now: now) }
        entries[key] = Entry(file: file, opened: now, used: now)
    }

    /// After a reload (roots may have changed) and when the settings change: start empty.
    func reset(to settings: FrontConfiguration.OpenFileCache?) {
        entries = [:]
        self.settings = settings
    }

    /// Drops what is inactive or past valid; if none is, the least recently used entry.
    private func makeRoom(_ settings: FrontConfiguration.OpenFileCache, now: NIODeadline) {
        entries = entries.filter { now - $0.value.used < settings.inactive && now - $0.value.opened < settings.valid }
        guard entries.count >= settings.max, let oldest = entries.min(by: { $0.value.used < $1.value.used }) else { return }
        entries[oldest.key] = nil
    }
}
