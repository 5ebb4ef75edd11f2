/// Parsers for tune's own flag values; each error says what to write instead.
public enum TuneInput {
    public struct InputError: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// `120`, `120s`, `2m`, `1m30s`, `500ms` → seconds.
    public static func duration(_ text: String, flag: String) throws(InputError) -> Double {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text)
        var total = 0.0
        var sawPart = false
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard let value = Double(digits), value >= 0 else { break }
            rest = rest.dropFirst(digits.count)
            // "ms" comes before "m" in `units`, so 500ms is never read as 500 minutes.
            let unit = units.first { rest.hasPrefix($0.suffix) }
            if unit == nil && !rest.isEmpty { break }
            total += value * (unit?.seconds ?? 1)
            rest = rest.dropFirst(unit?.suffix.count ?? 0)
            sawPart = true
        }
        guard sawPart, rest.isEmpty, total > 0 else {
            throw InputError("\(flag) \(text): expected a duration such as 30s, 2m, 1m30s or plain seconds")
        }
        return total
    }

    /// `16` or `8-64` → a closed range of client connections.
    public static func range(_ text: String, flag: String) throws(InputError) -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let numbers = parts.map { Int($0) }
        guard (1...2).contains(parts.count), numbers.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= 100_000 }) else {
            throw InputError("\(flag) \(text): expected a number from 1 to 100000 or a range LOW-HIGH such as 8-64")
        }
        let low = numbers[0]!
        let high = numbers.last!!
        guard low <= high else { throw InputError("\(flag) \(text): the range's low end is above its high end") }
        return low...high
    }

    /// `512M`, `2G`, `300MiB`, `1048576` (bytes) → bytes.
    public static func size(_ text: String, flag: String) throws(InputError) -> Int {
        let upper = text.uppercased()
        let suffixes: [(String, Int)] = [
            ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        let suffix = suffixes.first { upper.hasSuffix($0.0) }
        let number = upper.dropLast(suffix?.0.count ?? 0)
        guard let value = Double(number), value > 0 else {
            throw InputError("\(flag) \(text): expected a size such as 512M or 2G")
        }
        return Int(value * Double(suffix?.1 ?? 1))
    }

    /// A URL path the load generator requests: must start with '/' and hold no space or control character.
    public static func path(_ text: String, flag: String) throws(InputError) -> String {
        guard text.hasPrefix("/") else {
            throw InputError("\(flag) \(text): a URL path must start with '/', e.g. /sleep?s=0.05")
        }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw InputError("\(flag) \(text): percent-encode spaces and control characters in the URL")
        }
        return text
    }

    /// A `--urls` file: one `WEIGHT PATH` or `PATH` a line; blank lines and `#` comments skipped.
    public static func weightedPaths(_ text: String, file: String) throws(InputError) -> [WeightedPath] {
        var paths: [WeightedPath] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            let place = "--urls \(file) line \(index + 1)"
            switch fields.count {
            case 1:
                paths.append(WeightedPath(weight: 1, path: try path(String(fields[0]), flag: place)))
            case 2:
                guard let weight = Int(fields[0]), weight >= 1 else {
                    throw InputError("\(place): expected WEIGHT PATH with a whole weight ≥ 1, got '\(line)'")
                }
                paths.append(WeightedPath(weight: weight, path: try path(String(fields[1]), flag: place)))
            default:
                throw InputError("\(place): expected WEIGHT PATH, got '\(line)'")
            }
        }
        guard !paths.isEmpty else { throw InputError("--urls \(file): no URL in the file") }
        return paths
    }
}

/// A path the load generator requests, with its share of the requests.
public struct WeightedPath: Sendable, Codable, Equatable {
    public var weight: Int
    public var path: String

    public init(weight: Int, path: String) {
        self.weight = weight
        self.path = path
    }
}
