import KeelPool
import KeelSystem
import Testing

/// The rule that pairs systemd's sockets with configured listeners (keel's [[listen]], keel-pool's socket flags).
@Suite struct SocketActivationMatchTests {
    static func socket(_ fd: Int32, _ address: SocketActivation.Address, name: String? = nil) -> InheritedSocket {
        InheritedSocket(fd: fd, name: name, address: address)
    }

    @Test func namesWinThenAddressesAndTheRestBind() throws {
        let web = Self.socket(3, .inet(ip: "127.0.0.1", port: 9000), name: "web")
        let api = Self.socket(4, .inet(ip: "0.0.0.0", port: 8080))
        let wanted = [
            SocketActivation.Wanted(name: nil, address: .inet(ip: "0.0.0.0", port: 8080)),
            SocketActivation.Wanted(name: "web", address: .inet(ip: "127.0.0.1", port: 80)),
            SocketActivation.Wanted(name: nil, address: .inet(ip: "127.0.0.1", port: 8443)),
        ]
        let assigned = try SocketActivation.match(wanted, [web, api])
        #expect(assigned.map { $0?.fd } == [4, 3, nil], "by address, by name (its address differs), bound as usual")
    }

    @Test func aSocketNoListenerTakesIsAnErrorNamingIt() {
        let stray = Self.socket(5, .unix(path: "/run/other.sock"), name: "other")
        #expect(throws: SocketActivation.Failure.self) {
            try SocketActivation.match([SocketActivation.Wanted(name: nil, address: .unix(path: "/run/app.sock"))], [stray])
        }
        do {
            _ = try SocketActivation.match([], [stray])
        } catch {
            #expect(error.description == "inherited socket 5 (/run/other.sock, name \"other\") matches no configured listener: add one with that address or name, or remove it from the socket unit")
        }
    }

    @Test func configuredAddressesAreComparedInTheKernelsSpelling() {
        #expect(SocketActivation.resolve(host: "localhost", port: 80) == .inet(ip: "127.0.0.1", port: 80))
        #expect(SocketActivation.resolve(host: "::1", port: 8080) == .inet(ip: "::1", port: 8080))
        #expect(ListenAddress.tcp(host: "0.0.0.0", port: 3031).activationAddress == .inet(ip: "0.0.0.0", port: 3031))
        #expect(ListenAddress.unix(path: "/run/app.sock").activationAddress == .unix(path: "/run/app.sock"))
        #expect(ListenAddress(inherited: .inet(ip: "10.0.0.1", port: 3031)) == .tcp(host: "10.0.0.1", port: 3031))
    }
}
