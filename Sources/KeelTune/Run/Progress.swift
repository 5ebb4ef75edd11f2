#if canImport(Glibc)
    import Glibc
#endif

/// Progress on stderr: a bar redrawn in place on a terminal, one plain line per event otherwise (logs, CI).
struct Progress {
    let isTerminal = isatty(2) == 1
    let budget: Double
    private var barShown = false

    init(budget: Double) { self.budget = budget }

    /// The bar, while a shape is measured; nothing when stderr is not a terminal.
    mutating func bar(elapsed: Double, doing: String) {
        guard isTerminal else { return }
        let width = 30
        let filled = min(width, max(0, Int(Double(width) * elapsed / budget)))
        let percent = min(100, Int(100 * elapsed / budget))
        write(
            "\r\u{1B}[K[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                + "] \(percent)% " + doing)
        barShown = true
    }

    /// A finished step: clears the bar first on a terminal.
    mutating func line(_ text: String) {
        if isTerminal && barShown {
            write("\r\u{1B}[K")
            barShown = false
        }
        write("tune: " + text + "\n")
    }

    mutating func finish() {
        if isTerminal && barShown { write("\r\u{1B}[K") }
        barShown = false
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
