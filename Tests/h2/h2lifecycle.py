"""An HTTP/2 client for keel's lifecycle and flow-control tests (Tests/IntegrationTests/FrontHTTP2Tests).

    h2lifecycle.py --port P [--tls] --path /sleep?s=2 --signal TERM --pid KEEL_PID
        opens stream 1, sends the signal to the server once the request is out, then reads until the stream ends
    h2lifecycle.py --port P --idle
        opens the connection and sends nothing more: the server should GOAWAY and close when idle
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


def request(encoder, stream_id, path, args):
    block = encoder.encode([(":method", "GET"), (":path", path), (":scheme", "https" if args.tls else "http"),
                            (":authority", "%s:%d" % (args.host, args.port))])
    return frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block)


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
        out += request(encoder, 1, args.path, args)
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
            stream = streams.setdefault(str(stream_id), {"status": None, "body_bytes": 0, "ended": False, "reset": False})
            if kind == SETTINGS and not flags & ACK:
                replies += frame(SETTINGS, ACK, 0)
            elif kind == PING and not flags & ACK:
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
                stream["reset"] = True
        if replies:
            try:
                sock.sendall(replies)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                result["closed"] = True
    streams.pop("0", None)
    # Stream 1's fields at the top level too (the single-request modes read them there).
    result.update({key: streams.get("1", {}).get(key) for key in ("status", "body_bytes", "ended")})
    result["stream_ended"] = result.pop("ended")
    result["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
