"""The seed's sleep app, async: `await asyncio.sleep(s)` (?s=, default 0.1), then a short text answer."""
import asyncio

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = scope["query_string"]
    seconds = float(query[2:]) if query.startswith(b"s=") else 0.1
    await asyncio.sleep(seconds)
    await send(START)
    await send({"type": "http.response.body", "body": b"slept\n"})
