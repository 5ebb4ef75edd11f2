import COpenSSL
import NIOCore
import NIOEmbedded
@testable import KeelTLS

#if canImport(Glibc)
import Glibc
#endif

/// Self-signed certificates in a temp directory, made once per name set.
enum TestCertificates {
    static func directory() -> String {
        var template = Array("/tmp/keel-tls-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!
        return String(decoding: UnsafeRawBufferPointer(start: made, count: strlen(made)), as: UTF8.self)
    }

    static func make(in directory: String, name: String, dnsNames: [String], days: Int = 30) throws -> TLSConfiguration.Certificate {
        let certificate = TLSConfiguration.Certificate(chainPath: "\(directory)/\(name).pem", keyPath: "\(directory)/\(name).key")
        try SelfSignedCertificate.write(certificatePath: certificate.chainPath, keyPath: certificate.keyPath, dnsNames: dnsNames, days: days)
        return certificate
    }
}

/// A client TLS session driven by hand against a server channel (no verification: the tests check names directly).
final class TestClient {
    let context: OpaquePointer
    let connection: TLSConnection

    init(serverName: String? = nil, alpn: [String] = ["http/1.1"], maxVersion: Int32 = 0x0304) {
        context = SSL_CTX_new(TLS_client_method())!
        _ = keel_SSL_CTX_set_max_proto_version(context, maxVersion)
        let wire = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
        if !wire.isEmpty { _ = SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) }
        connection = TLSConnection(context: context, isServer: false)!
        if let serverName {
            var name = Array(serverName.utf8CString)
            _ = name.withUnsafeMutableBytes { SSL_ctrl(connection.ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), $0.baseAddress) }
        }
    }

    deinit { SSL_CTX_free(context) }

    /// Runs the handshake against `channel` until it completes or the server stops answering.
    func handshake(with channel: EmbeddedChannel) throws -> Bool {
        for _ in 0..<10 {
            let result = connection.handshake()
            if let output = connection.takeOutput(allocator: channel.allocator) { try channel.writeInbound(output) }
            try pump(from: channel)
            if case .complete = result { return true }
            if case .failed = result { return false }
        }
        return false
    }

    /// Feeds what the server wrote to the client side.
    func pump(from channel: EmbeddedChannel) throws {
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { continue }
            connection.receive(buffer)
        }
    }

    func send(_ text: String, to channel: EmbeddedChannel) throws {
        _ = Array(text.utf8).withUnsafeBytes { connection.write($0) }
        if let output = connection.takeOutput(allocator: channel.allocator) { try channel.writeInbound(output) }
    }

    func receive(from channel: EmbeddedChannel) throws -> String {
        try pump(from: channel)
        var buffer = channel.allocator.buffer(capacity: 0)
        _ = connection.readPlaintext(into: &buffer)
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }
}

/// Records user events and errors that reach the end of the pipeline.
final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var events: [Any] = []
    var errors: [any Error] = []
    var received = ""

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) { events.append(event) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append(error) }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readString(length: buffer.readableBytes) ?? ""
    }
}
