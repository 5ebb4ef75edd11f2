import Testing

@testable import KeelFront

@Suite struct FrontConfigurationTests {
    @Test func listenerDescriptionBracketsIPv6() {
        #expect(FrontConfiguration.Listener(host: "::1", port: 8080).description == "[::1]:8080")
        #expect(FrontConfiguration.Listener(host: "127.0.0.1", port: 80).description == "127.0.0.1:80")
    }
}
