/// deploy/examples/wsgi/app.py, carried in the binary so the demo needs no files on disk (a test checks the two
/// are the same). The demo writes it into its temp directory and runs it with `keel-pool --wsgi-file`.
enum DemoWSGIApp {
    static let fileName = "app.py"
    static let source = #"""
"""A WSGI example for keel-pool (and the WSGI benchmark's app): plain PEP 3333, no framework.

    keel-pool --http-socket 127.0.0.1:8000 --wsgi-file deploy/examples/wsgi/app.py --processes 2 --threads 4

/          13-byte hello (the benchmark's request)
/sleep     the seed's simple_app: prints pid and REQUEST_URI, sleeps ?s= seconds (default 1)
/cpu       ?ms= milliseconds of this thread's CPU in a pure-Python loop (default 2): holds the GIL throughout
/env       the environ as text
/echo      the request body back (POST)
"""
import os
import time

HELLO_WORLD = b"Hello world!\n"


def application(environ, start_response):
    path = environ.get('PATH_INFO', '/')
    if path == '/':
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '13')])
        return [HELLO_WORLD]
    if path.startswith('/sleep'):
        seconds = float(environ.get('QUERY_STRING', '').partition('s=')[2] or 1)
        print(os.getpid(), os.getppid(), environ.get('REQUEST_URI', path), "called", time.strftime("%H:%M:%S"))
        time.sleep(seconds)
        start_response('200 OK', [('Content-type', 'text/plain')])
        return [HELLO_WORLD]
    if path == '/cpu':
        milliseconds = float(environ.get('QUERY_STRING', '').partition('ms=')[2] or 2)
        # CPU time of this thread, not wall time: under GIL contention the work per request stays the same.
        end = time.thread_time() + milliseconds / 1000
        total = 0
        while time.thread_time() < end:
            for i in range(200):
                total += i * i
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d\n' % total]
    if path == '/env':
        body = ''.join('%s = %r\n' % item for item in sorted(environ.items())).encode('utf-8', 'replace')
        start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])
        return [body]
    if path == '/echo':
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length)
        start_response('200 OK', [('Content-Type', environ.get('CONTENT_TYPE') or 'application/octet-stream')])
        return [body]
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'Not Found\n']

"""#
}
