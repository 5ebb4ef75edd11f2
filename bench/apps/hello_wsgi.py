"""WSGI twin of keel-pool's built-in `hello` app: 200, text/plain, the same 13-byte body."""

BODY = b"Hello world!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
