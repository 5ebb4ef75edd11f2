"""What keel's HTTP/2 test clients share (h2attack.py, h2lifecycle.py): frame layout, the connection, a frame reader.

Frames are built and read by hand (HPACK by the `hpack` package that comes with `h2`): the h2 package refuses to
emit attack shapes and treats a graceful server's first GOAWAY as the end (RFC 9113 §6.8 sends two).
"""
import socket
import ssl
import struct

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def connect(host, port, use_tls, timeout):
    """A TCP (h2c) or TLS socket; TLS must choose h2 by ALPN. Certificates are not checked (test servers)."""
    raw = socket.create_connection((host, port), timeout=timeout)
    if not use_tls:
        return raw
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    wrapped = context.wrap_socket(raw, server_hostname="localhost")
    if wrapped.selected_alpn_protocol() != "h2":
        raise ConnectionError("the server did not choose h2 by ALPN (got %r)" % wrapped.selected_alpn_protocol())
    return wrapped


class FrameReader:
    """Bytes in, whole frames out: (kind, flags, stream id, payload)."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        frames = []
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            stream_id = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
            frames.append((kind, flags, stream_id, self.buffer[9:9 + length]))
            self.buffer = self.buffer[9 + length:]
        return frames
