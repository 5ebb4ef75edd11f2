"""WebSocket echo load: C connections each send a 64-byte text message and wait for its echo, for D seconds.
Prints messages/s (round trips). `python ws_load.py URI CONNECTIONS SECONDS`."""
import asyncio, sys, time

import websockets


async def client(uri, stop_at, counts, index):
    async with websockets.connect(uri, ping_interval=None, compression=None) as ws:
        message = "x" * 64
        done = 0
        while time.monotonic() < stop_at:
            await ws.send(message)
            await ws.recv()
            done += 1
        counts[index] = done


async def main(uri, connections, seconds):
    counts = [0] * connections
    start = time.monotonic()
    stop_at = start + seconds
    await asyncio.gather(*(client(uri, stop_at, counts, i) for i in range(connections)))
    elapsed = time.monotonic() - start
    print("%.0f" % (sum(counts) / elapsed))


try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
