import Testing

@testable import KeelWSGI

@Suite("WSGI status line")
struct StatusLineTests {
    @Test(arguments: [
        ("200 OK", 200), ("404 Not Found", 404), ("599 Custom reason", 599), ("204 ", 204),
    ])
    func validStatusGivesItsCode(status: String, code: Int) {
        #expect(StatusLine.code(of: status) == code)
    }

    @Test(arguments: ["200", "200OK", "20 OK", "abc OK", "200 OK\r\nX: y", "099 Low", "", " 200 OK", "2000 OK"])
    func invalidStatusIsRefused(status: String) {
        #expect(StatusLine.code(of: status) == nil)
    }
}
