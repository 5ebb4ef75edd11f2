"""An HTTP/2 client that watches a server's GOAWAY: for keel's lifecycle tests (Tests/IntegrationTests/FrontHTTP2Tests).

    h2lifecycle.py --port P [--tls] --path /sleep?ms=2000 --signal TERM --pid KEEL_PID
        opens one stream, sends the signal to the server once the request is out, then reads until the stream ends
    h2lifecycle.py --port P --idle
        opens the connection and sends nothing more: the server should GOAWAY and close when idle

Prints one JSON line: every GOAWAY (error code, last stream id), the stream's status and body length, closed.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import struct
import time

import hpack

# Frames are read by hand: the h2 package treats the first GOAWAY as the end, but a graceful server sends
# GOAWAY(2^31-1) + PING first and the real last stream id after the PING's ack (RFC 9113 §6.8).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def connect(host, port, use_tls, timeout):
    raw = socket.create_connection((host, port), timeout=timeout)
    if not use_tls:
        return raw
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    wrapped = context.wrap_socket(raw, server_hostname="localhost")
    if wrapped.selected_alpn_protocol() != "h2":
        raise SystemExit("server did not choose h2 by ALPN (got %r)" % wrapped.selected_alpn_protocol())
    return wrapped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--path", default="/")
    parser.add_argument("--signal", choices=["TERM", "HUP"])
    parser.add_argument("--pid", type=int)
    parser.add_argument("--signal-after", type=float, default=0.5, help="seconds between the request and the signal")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    sock = connect(args.host, args.port, args.tls, args.timeout)
    out = PREFACE + frame(SETTINGS, 0, 0)
    if not args.idle:
        block = hpack.Encoder().encode([(":method", "GET"), (":path", args.path),
                                        (":scheme", "https" if args.tls else "http"),
                                        (":authority", "%s:%d" % (args.host, args.port))])
        out += frame(HEADERS, END_STREAM | END_HEADERS, 1, block)
    sock.sendall(out)

    result = {"goaways": [], "status": None, "body_bytes": 0, "stream_ended": False, "stream_reset": False,
              "closed": False, "goaway_before_end": False}
    decoder = hpack.Decoder()
    signal_at = time.monotonic() + args.signal_after if args.signal else None
    deadline = time.monotonic() + args.timeout
    started = time.monotonic()
    buffered = b""
    sock.settimeout(0.1)
    while time.monotonic() < deadline and not result["closed"]:
        if signal_at is not None and time.monotonic() >= signal_at:
            os.kill(args.pid, signal.SIGTERM if args.signal == "TERM" else signal.SIGHUP)
            signal_at = None
        try:
            data = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            result["closed"] = True
            break
        buffered += data
        replies = b""
        while len(buffered) >= 9:
            length = int.from_bytes(buffered[:3], "big")
            if len(buffered) < 9 + length:
                break
            kind, flags = buffered[3], buffered[4]
            stream_id = int.from_bytes(buffered[5:9], "big") & 0x7FFFFFFF
            payload, buffered = buffered[9:9 + length], buffered[9 + length:]
            if kind == SETTINGS and not flags & ACK:
                replies += frame(SETTINGS, ACK, 0)
            elif kind == PING and not flags & ACK:
                replies += frame(PING, ACK, 0, payload)
            elif kind == GOAWAY:
                last, code = struct.unpack(">II", payload[:8])
                result["goaways"].append({"last_stream_id": last & 0x7FFFFFFF, "error_code": code})
                result["goaway_before_end"] = result["goaway_before_end"] or not result["stream_ended"]
            elif kind == HEADERS and stream_id == 1:
                headers = dict(decoder.decode(payload))
                if ":status" in headers:
                    result["status"] = int(headers[":status"])
                result["stream_ended"] = result["stream_ended"] or bool(flags & END_STREAM)
            elif kind == DATA and stream_id == 1:
                result["body_bytes"] += length
                result["stream_ended"] = result["stream_ended"] or bool(flags & END_STREAM)
            elif kind == RST_STREAM and stream_id == 1:
                result["stream_reset"] = True
        if replies:
            try:
                sock.sendall(replies)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                result["closed"] = True
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
