"""ASGI twin of hello_wsgi: 200, text/plain, the same 13-byte body, as a raw ASGI 3 callable (no framework)."""

BODY = b"Hello world!\n"
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]}
END = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan work: the servers go on without it
    await send(START)
    await send(END)
