import UWSGI

/// `Accept-Encoding` negotiation between gzip and identity (RFC 9110 §12.5.3), as nginx reads it: gzip (or "*" when gzip
/// is not named) with a q above 0 is taken, "gzip;q=0" refuses it, and an identity the client ranks higher wins.
enum AcceptEncoding {
    /// Whether a response may be gzipped for a request with these Accept-Encoding values (all header lines).
    static func acceptsGzip(_ values: [String]) -> Bool {
        var gzip: Double?
        var identity: Double?
        var wildcard: Double?
        for value in values {
            for item in value.split(separator: ",") {
                let parts = item.split(separator: ";")
                guard let rawName = parts.first else { continue }
                let name = rawName.trimmingSpaces.lowercased()
                var quality = 1.0
                for parameter in parts.dropFirst() {
                    let pair = parameter.split(separator: "=", maxSplits: 1)
                    if pair.count == 2, pair[0].trimmingSpaces.lowercased() == "q" {
                        // An unparsable q counts as 0: refusing is the safe reading.
                        quality = Double(pair[1].trimmingSpaces).map { min(max($0, 0), 1) } ?? 0
                    }
                }
                switch name {
                case "gzip", "x-gzip": gzip = max(gzip ?? 0, quality)
                case "identity": identity = quality
                case "*": wildcard = quality
                default: break
                }
            }
        }
        let gzipQuality = gzip ?? wildcard ?? 0
        let identityQuality = identity ?? 0
        return gzipQuality > 0 && gzipQuality >= identityQuality
    }
}

