/// Why a WSGI call produced no usable response; logged with the request line, answered with a 500.
struct AppFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
