/// Why a tune run stopped early, said as what the user must fix.
public struct TuneError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
