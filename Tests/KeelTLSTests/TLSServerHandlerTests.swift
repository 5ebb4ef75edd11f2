import COpenSSL
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing
@testable import KeelTLS

@Suite struct TLSServerHandlerTests {
    static let directory = TestCertificates.directory()
    static let context: TLSServerContext = {
        let first = try! TestCertificates.make(in: directory, name: "one", dnsNames: ["one.test"])
        let second = try! TestCertificates.make(in: directory, name: "two", dnsNames: ["two.test", "*.wild.test"])
        return try! TLSServerContext(configuration: TLSConfiguration(certificates: [first, second]))
    }()

    func makeChannel(timeout: TimeAmount = .seconds(10)) throws -> (EmbeddedChannel, EventRecorder) {
        let recorder = EventRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(TLSServerHandler(context: Self.context, handshakeTimeout: timeout))
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, recorder)
    }

    @Test func handshakeFiresALPNEventAndCarriesPlaintextBothWays() throws {
        let (channel, recorder) = try makeChannel()
        let client = TestClient(serverName: "one.test")
        #expect(try client.handshake(with: channel))
        #expect(client.connection.negotiatedProtocol == "http/1.1")
        let completed = recorder.events.compactMap { $0 as? TLSUserEvent }
        #expect(completed == [.handshakeCompleted(negotiatedProtocol: "http/1.1")])

        try client.send("GET / HTTP/1.1\r\n\r\n", to: channel)
        #expect(recorder.received == "GET / HTTP/1.1\r\n\r\n")
        try channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n"))).wait()
        #expect(try client.receive(from: channel) == "HTTP/1.1 200 OK\r\n\r\n")
    }

    @Test func largeWritesArriveWhole() throws {
        let (channel, _) = try makeChannel()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        let big = String(repeating: "0123456789abcdef", count: 64 * 1024)  // 1 MiB, many records
        try channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: big))).wait()
        var received = ""
        while received.utf8.count < big.utf8.count {
            let chunk = try client.receive(from: channel)
            if chunk.isEmpty { break }
            received += chunk
        }
        #expect(received == big)
    }

    /// A response's head, body and end written apart and flushed once leave as one TLS record (nothing before the
    /// flush), and every write's promise completes.
    @Test func smallWritesUpToAFlushLeaveAsOneRecord() throws {
        let (channel, _) = try makeChannel()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        let parts = ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello", ""]
        let written = parts.map { channel.write(IOData.byteBuffer(ByteBuffer(string: $0))) }
        #expect(try channel.readOutbound(as: IOData.self) == nil, "nothing leaves before the flush")
        channel.flush()
        for future in written { try future.wait() }
        var records = 0
        var ciphertext = channel.allocator.buffer(capacity: 0)
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(var buffer) = data else { continue }
            ciphertext.writeBuffer(&buffer)
        }
        var walk = ciphertext
        // Record headers: type (1 byte), legacy version (2), length (2).
        while let type = walk.readInteger(as: UInt8.self), let version = walk.readInteger(as: UInt16.self),
            let length = walk.readInteger(as: UInt16.self)
        {
            #expect(type == 23 && version == 0x0303, "application data")
            walk.moveReaderIndex(forwardBy: Int(length))
            records += 1
        }
        #expect(records == 1)
        client.connection.receive(ciphertext)
        var plaintext = channel.allocator.buffer(capacity: 0)
        _ = client.connection.readPlaintext(into: &plaintext)
        #expect(plaintext.readString(length: plaintext.readableBytes) == parts.joined())
    }

    /// OpenSSL's record buffers stay while requests come and are given back once the connection has been quiet
    /// for `releaseBuffersAfter`; the next request still works.
    @Test func aQuietConnectionGivesItsRecordBuffersBack() throws {
        let handler = TLSServerHandler(context: Self.context, handshakeTimeout: .seconds(10))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.pipeline.syncOperations.addHandler(EventRecorder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        func exchange() throws {
            try client.send("ping", to: channel)
            try channel.writeAndFlush(IOData.byteBuffer(ByteBuffer(string: "pong"))).wait()
            #expect(try client.receive(from: channel) == "pong")
        }
        try exchange()
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        try exchange()
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(handler.buffersReleased == 0, "busy within the last 5 s")
        channel.embeddedEventLoop.advanceTime(by: .seconds(3))
        #expect(handler.buffersReleased == 1, "quiet for 5 s")
        try exchange()
        channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(handler.buffersReleased == 2)
    }

    @Test func writesBeforeTheHandshakeWaitForIt() throws {
        let (channel, _) = try makeChannel()
        let written = channel.write(IOData.byteBuffer(ByteBuffer(string: "early")))
        channel.flush()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        try written.wait()
        #expect(try client.receive(from: channel) == "early")
    }

    @Test func garbageFailsTheHandshakeAndCloses() throws {
        let (channel, recorder) = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(!channel.isActive)
        #expect(recorder.errors.contains { if case TLSError.handshakeFailed = $0 { true } else { false } })
    }

    @Test func anOldProtocolVersionIsRefused() throws {
        let (channel, _) = try makeChannel()
        let client = TestClient(maxVersion: 0x0302)  // TLS 1.1 at most
        #expect(try client.handshake(with: channel) == false)
        #expect(!channel.isActive)
    }

    @Test func aSilentClientIsClosedAtTheHandshakeTimeout() throws {
        let (channel, recorder) = try makeChannel(timeout: .seconds(2))
        try channel.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00]))  // the start of a ClientHello
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
        #expect(recorder.errors.contains { ($0 as? TLSError) == .handshakeTimeout })
    }

    @Test func closeNotifyFromThePeerIsAnsweredAndCloses() throws {
        let (channel, recorder) = try makeChannel()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        client.connection.shutdown()
        try channel.writeInbound(client.connection.takeOutput(allocator: channel.allocator)!)
        #expect(!channel.isActive)
        #expect(!recorder.errors.contains { ($0 as? TLSError) == .uncleanShutdown })
    }

    @Test func aTCPCloseWithoutCloseNotifyIsReportedUnclean() throws {
        let (channel, recorder) = try makeChannel()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        channel.pipeline.fireChannelInactive()
        #expect(recorder.errors.contains { ($0 as? TLSError) == .uncleanShutdown })
    }

    @Test func closingSendsCloseNotify() throws {
        let (channel, _) = try makeChannel()
        let client = TestClient()
        #expect(try client.handshake(with: channel))
        try channel.close().wait()
        try client.pump(from: channel)
        var buffer = channel.allocator.buffer(capacity: 0)
        guard case .closed = client.connection.readPlaintext(into: &buffer) else {
            Issue.record("the client did not see close_notify")
            return
        }
    }

    @Test func sniPicksTheCertificateByExactAndWildcardName() throws {
        #expect(Self.context.certificateNames == [["one.test"], ["two.test", "*.wild.test"]])
        #expect(Self.context.certificateIndex(forServerName: "two.test") == 1)
        #expect(Self.context.certificateIndex(forServerName: "TWO.test") == 1)
        #expect(Self.context.certificateIndex(forServerName: "a.wild.test") == 1)
        #expect(Self.context.certificateIndex(forServerName: "a.b.wild.test") == nil)
        #expect(Self.context.certificateIndex(forServerName: "unknown.test") == nil)
    }
}

@Suite struct CiphertextSinkTests {
    /// The BIO appends what OpenSSL writes, hands it over once, and releases its sink when OpenSSL frees it.
    @Test func theBIOAppendsAndReleasesItsSink() throws {
        weak var weakSink: CiphertextSink?
        do {
            let sink = CiphertextSink()
            weakSink = sink
            let bio = try #require(CiphertextSink.makeBIO(sink))
            let bytes: [UInt8] = Array("record one|record two".utf8)
            #expect(bytes[..<11].withUnsafeBytes { BIO_write(bio, $0.baseAddress, 11) } == 11)
            #expect(bytes[11...].withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) } == Int32(bytes.count - 11))
            #expect(BIO_ctrl(bio, BIO_CTRL_FLUSH, 0, nil) == 1)
            var taken = try #require(sink.take())
            #expect(taken.readString(length: taken.readableBytes) == "record one|record two")
            #expect(sink.take() == nil, "taken once")
            BIO_free(bio)
        }
        #expect(weakSink == nil, "the BIO's reference went with it")
    }
}
