"""An HTTP/2 client for keel's lifecycle and flow-control tests (Tests/IntegrationTests/FrontHTTP2Tests).

    h2lifecycle.py --port P [--tls] --path /sleep?s=2 --signal TERM --pid KEEL_PID
        opens stream 1, sends the signal to the server once the request is out, then reads until the stream ends
    h2lifecycle.py --port P --idle [--no-ping-ack]
        opens the connection and sends nothing more: the server should GOAWAY and close when idle (without the
        PING's ack too: a silent client must not keep the connection)
    h2lifecycle.py --port P --open-request --path /
        stream 1's HEADERS without END_STREAM, then silence: the server should answer 408 and reset the stream
        with NO_ERROR after client_body_timeout
    h2lifecycle.py --port P --host-header other.example --path /
        stream 1 carries a Host header that differs from its :authority: the server should reset it
    h2lifecycle.py --port P --slow-stream /big --path /
        stream 1 asks for /big and is never given stream window (the connection window is), then stream 3 asks
        for --path: its answer must come while stream 1 stays stalled at its 64 KiB window

Prints one JSON line: every GOAWAY (error code, last stream id), each stream's status and body bytes, closed.
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

from h2frames import (ACK, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PREFACE, RST_STREAM, SETTINGS,
                      WINDOW_UPDATE, FrameReader, connect, frame)


def request(encoder, stream_id, path, args, end_stream=True):
    headers = [(":method", "GET"), (":path", path), (":scheme", "https" if args.tls else "http"),
               (":authority", "%s:%d" % (args.host, args.port))]
    if args.host_header:
        headers.append(("host", args.host_header))
    return frame(HEADERS, (END_STREAM if end_stream else 0) | END_HEADERS, stream_id, encoder.encode(headers))


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
    parser.add_argument("--no-ping-ack", action="store_true", help="never answer the server's PINGs")
    parser.add_argument("--open-request", action="store_true", help="stream 1's HEADERS without END_STREAM")
    parser.add_argument("--host-header", help="a Host header beside :authority")
    parser.add_argument("--slow-stream", metavar="PATH")
    parser.add_argument("--linger", type=float, default=0, help="seconds the connection stays open after stream 3")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()

    sock = connect(args.host, args.port, args.tls, args.timeout)
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    out = PREFACE + frame(SETTINGS, 0, 0)
    if args.slow_stream:
        out += request(encoder, 1, args.slow_stream, args)
    elif not args.idle:
        out += request(encoder, 1, args.path, args, end_stream=not args.open_request)
    sock.sendall(out)

    streams = {}
    result = {"goaways": [], "streams": streams, "closed": False, "goaway_before_end": False}
    signal_at = time.monotonic() + args.signal_after if args.signal else None
    second_at = time.monotonic() + 1 if args.slow_stream else None
    deadline = time.monotonic() + args.timeout
    started = time.monotonic()
    reader = FrameReader()
    linger_until = None
    sock.settimeout(0.1)
    while time.monotonic() < deadline and not result["closed"]:
        if signal_at is not None and time.monotonic() >= signal_at:
            os.kill(args.pid, signal.SIGTERM if args.signal == "TERM" else signal.SIGHUP)
            signal_at = None
        if second_at is not None and time.monotonic() >= second_at:
            sock.sendall(request(encoder, 3, args.path, args))
            second_at = None
        first = streams.get("1", {})
        # One-stream checks end with their stream: the reset after a 408, or either end with a Host header.
        if args.open_request and first.get("reset") is not None:
            break
        if args.host_header and (first.get("reset") is not None or first.get("ended")):
            break
        if args.slow_stream and streams.get("3", {}).get("ended"):
            linger_until = linger_until or time.monotonic() + args.linger
            if time.monotonic() >= linger_until:
                break
        try:
            data = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            data = b""
        if not data:
            result["closed"] = True
            break
        replies = b""
        for kind, flags, stream_id, payload in reader.feed(data):
            stream = streams.setdefault(str(stream_id), {"status": None, "body_bytes": 0, "ended": False, "reset": None})
            if kind == SETTINGS and not flags & ACK:
                replies += frame(SETTINGS, ACK, 0)
            elif kind == PING and not flags & ACK and not args.no_ping_ack:
                replies += frame(PING, ACK, 0, payload)
            elif kind == GOAWAY:
                last, code = struct.unpack(">II", payload[:8])
                result["goaways"].append({"last_stream_id": last & 0x7FFFFFFF, "error_code": code})
                result["goaway_before_end"] = result["goaway_before_end"] or not streams.get("1", {}).get("ended")
            elif kind == HEADERS:
                headers = dict(decoder.decode(payload))
                if ":status" in headers:
                    stream["status"] = int(headers[":status"])
                stream["ended"] = stream["ended"] or bool(flags & END_STREAM)
            elif kind == DATA:
                stream["body_bytes"] += len(payload)
                stream["ended"] = stream["ended"] or bool(flags & END_STREAM)
                # The connection window is always given back; a slow stream's own window never is.
                if payload:
                    replies += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload)))
                    if not (args.slow_stream and stream_id == 1):
                        replies += frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", len(payload)))
            elif kind == RST_STREAM:
                stream["reset"] = struct.unpack(">I", payload[:4])[0]  # the error code
        if replies:
            try:
                sock.sendall(replies)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                result["closed"] = True
    streams.pop("0", None)
    # Stream 1's fields at the top level too (the single-request modes read them there).
    result.update({key: streams.get("1", {}).get(key) for key in ("status", "body_bytes", "ended", "reset")})
    result["stream_ended"] = result.pop("ended")
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
