import Foundation

/// Python apps the WSGI tests serve, written to a temp directory as one module (`keel_test_apps`).
/// Most are wrapped in the stdlib's `wsgiref.validate.validator`, so PEP 3333 is checked by code we did not write.
enum WSGITestApps {
    static let module = "keel_test_apps"

    static let source = #"""
import json, os, signal, sys, threading, time
from wsgiref.validate import validator


def _hello(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello world!\n']

hello = validator(_hello)


def start_response_rules(environ, start_response):
    # Not under the validator (it would stop at the first misuse): each misuse of start_response and write()
    # raises what PEP 3333 and the old Python class raised, and the request still gets its answer.
    seen = {}
    def attempt(name, call):
        try:
            call()
            seen[name] = 'no error'
        except Exception as error:
            seen[name] = type(error).__name__ + ': ' + str(error)
    attempt('status_bytes', lambda: start_response(b'200 OK', []))
    attempt('headers_tuple', lambda: start_response('200 OK', (('A', 'b'),)))
    attempt('header_int', lambda: start_response('200 OK', [('A', 1)]))
    attempt('header_triple', lambda: start_response('200 OK', [('A', 'b', 'c')]))
    attempt('unknown_keyword', lambda: start_response('200 OK', [], colour='red'))
    attempt('no_headers', lambda: start_response('200 OK'))
    write = start_response('200 OK', [('Content-Type', 'application/json')], exc_info=None)
    attempt('second_call', lambda: start_response('200 OK', []))
    attempt('write_str', lambda: write('text'))
    attempt('exc_info_none_second', lambda: start_response('201 Created', [], None))
    return [json.dumps(seen).encode()]


def leak_probe(environ, start_response):
    # Every per-request object the worker makes for Python: the environ and its keys, wsgi.input (empty or not),
    # start_response, write(), the head and a list body.
    body = environ['wsgi.input'].read()
    write = start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Agent', environ.get('HTTP_USER_AGENT', ''))])
    write(b'w')
    return [b'ok', body]


def bad_header_value(environ, start_response):
    start_response('200 OK', [('X-Count', 3)])
    return [b'never']


def empty_body_reads(environ, start_response):
    # Not under the validator, which allows read() only with a size. A request without a body: every way of reading wsgi.input gives nothing, as on an empty file; the environ
    # is the request's own (a key left by an earlier request's app must not be there).
    stream = environ['wsgi.input']
    seen = {
        'read': list(stream.read()), 'read_all': list(stream.read(-1)), 'read_0': list(stream.read(0)),
        'read_5': list(stream.read(5)), 'readline': list(stream.readline()), 'readline_3': list(stream.readline(3)),
        'readlines': stream.readlines(), 'iter': list(stream), 'leaked': 'keel.test.leak' in environ,
    }
    environ['keel.test.leak'] = True
    environ['wsgi.errors'].write('no newline after this')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(seen).encode()]


HELLO_WORLD = b"Hello world!\n"

def _simple_app(environ, start_response):
    # The seed's app: prints pid and REQUEST_URI, sleeps (here ?s= seconds, 10 in the seed).
    status = '200 OK'
    response_headers = [('Content-type', 'text/plain')]
    # One write per line: print() writes each argument apart, so two threads' lines could interleave.
    sys.stdout.write("%d %d %s called %.3f\n" % (os.getpid(), os.getppid(), environ['REQUEST_URI'], time.monotonic()))
    sys.stdout.flush()
    time.sleep(float(environ['QUERY_STRING'].partition('=')[2] or '10'))
    sys.stdout.write("%d %s done %.3f\n" % (os.getpid(), environ['REQUEST_URI'], time.monotonic()))
    sys.stdout.flush()
    start_response(status, response_headers)
    return [HELLO_WORLD]

simple_app = validator(_simple_app)


def _environ(environ, start_response):
    shown = {k: v for k, v in environ.items() if isinstance(v, str)}
    for key in ('wsgi.multithread', 'wsgi.multiprocess', 'wsgi.run_once', 'wsgi.url_scheme', 'wsgi.input_terminated'):
        shown[key] = environ.get(key)
    shown['wsgi.version'] = list(environ['wsgi.version'])
    shown['path_bytes'] = list(environ['PATH_INFO'].encode('latin-1'))
    with open('/proc/thread-self/status') as status:
        shown['blocked_signals'] = [int(line.split()[1], 16) for line in status if line.startswith('SigBlk:')][0]
    shown['sys.prefix'] = sys.prefix
    shown['python_version'] = '%d.%d' % sys.version_info[:2]
    shown['os.environ KEEL_TEST_ENV'] = os.environ.get('KEEL_TEST_ENV')
    shown['HAS_EMPTY_CONTENT_LENGTH'] = environ.get('CONTENT_LENGTH') == ''
    body = json.dumps(shown).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]

environ_app = validator(_environ)


def _stream(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    def generate():
        for i in range(5):
            yield b'chunk %d\n' % i
    return generate()

stream = validator(_stream)


def _echo_read(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    body = environ['wsgi.input'].read(length)
    assert environ['wsgi.input'].read(1) == b'', 'read past CONTENT_LENGTH'
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [body]

echo_read = validator(_echo_read)


def _echo_lines(environ, start_response):
    stream = environ['wsgi.input']
    parts = []
    while True:
        line = stream.readline()
        if not line:
            break
        parts.append(line)
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [b''.join(parts)]

echo_lines = validator(_echo_lines)


def _echo_iter(environ, start_response):
    lines = list(environ['wsgi.input'])
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [b''.join(lines)]

echo_iter = validator(_echo_iter)


def _raise_before(environ, start_response):
    raise RuntimeError('boom before start_response')

raise_before = validator(_raise_before)


def _raise_after(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    raise RuntimeError('boom after start_response')

raise_after = validator(_raise_after)


def _exc_info(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    try:
        raise ValueError('handled by the app')
    except ValueError:
        start_response('500 Internal Server Error', [('Content-Type', 'text/plain')], sys.exc_info())
    return [b'the app handled it\n']

exc_info = validator(_exc_info)


def _exc_info_after_commit(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    def generate():
        yield b'first\n'
        try:
            raise ValueError('late failure')
        except ValueError:
            start_response('500 Internal Server Error', [('Content-Type', 'text/plain')], sys.exc_info())
        yield b'never\n'
    return generate()

exc_info_after_commit = validator(_exc_info_after_commit)


def _write_callable(environ, start_response):
    write = start_response('200 OK', [('Content-Type', 'text/plain')])
    write(b'written, ')
    write(b'then ')
    return [b'returned\n']

write_callable = validator(_write_callable)


class SlowBody:
    """Streams until the client goes; close() leaves a marker file the test waits for."""
    def __init__(self, marker):
        self.marker = marker
    def __iter__(self):
        chunk = b'x' * 65536
        for _ in range(100000):
            yield chunk
            time.sleep(0.002)
    def close(self):
        with open(self.marker, 'w') as f:
            f.write('closed')

def close_on_disconnect(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return SlowBody(environ['QUERY_STRING'].partition('=')[2])


def str_body(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return ['text, not bytes']


def header_injection(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Evil', 'a\r\nSet-Cookie: stolen=1')])
    return [b'never sent']


def bad_status(environ, start_response):
    start_response('200', [('Content-Type', 'text/plain')])
    return [b'never sent']


def _file_wrapper(environ, start_response):
    path = environ['QUERY_STRING'].partition('=')[2]
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(os.path.getsize(path)))])
    return environ['wsgi.file_wrapper'](open(path, 'rb'), 32768)

file_wrapper = validator(_file_wrapper)


def errors_log(environ, start_response):
    errors = environ['wsgi.errors']
    errors.write('first line from wsgi.errors\nsecond ')
    errors.write('line\n')
    errors.writelines(['from writelines, ', 'one line\n'])
    try:
        errors.write(b'bytes')
        refused = 'no error'
    except TypeError as error:
        refused = str(error)
    errors.write('a lone surrogate \udc80 is escaped\n')
    errors.write('a CRLF line\r\nafter it\n')
    errors.flush()
    errors.write('unterminated tail')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [refused.encode()]


def _write_then_wait(environ, start_response):
    # write() must reach the client before it returns: the test creates the marker only once it has
    # read the first bytes, and the app waits for the marker before it ends the response.
    marker = environ['QUERY_STRING'].partition('=')[2]
    write = start_response('200 Okay-ish', [('Content-Type', 'text/plain')])
    write(b'first\n')
    deadline = time.monotonic() + 10
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    write(b'released\n' if os.path.exists(marker) else b'timed out\n')
    return [b'last\n']

write_then_wait = validator(_write_then_wait)


def _read_chunks(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    stream = environ['wsgi.input']
    parts = []
    while True:
        part = stream.read(7777)
        if not part:
            break
        parts.append(part)
    body = b''.join(parts)
    assert len(body) == length, 'read %d of %d' % (len(body), length)
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [body]

read_chunks = validator(_read_chunks)


def ignore_body(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ignored %s bytes\n' % environ.get('CONTENT_LENGTH', '0').encode()]


def first_ten(environ, start_response):
    # Answers with the body's first 10 bytes, without waiting for the rest of it.
    head = environ['wsgi.input'].read(10)
    start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(len(head)))])
    return [head]


def slow_reader(environ, start_response):
    stream = environ['wsgi.input']
    total = 0
    while True:
        part = stream.read(65536)
        if not part:
            break
        total += len(part)
        time.sleep(0.001)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'read %d bytes\n' % total]


def read_until_cut(environ, start_response):
    # Reports on wsgi.errors how the body ended: the test reads the pool log.
    length = int(environ.get('CONTENT_LENGTH') or 0)
    total = 0
    try:
        while True:
            part = environ['wsgi.input'].read(65536)
            if not part:
                break
            total += len(part)
        outcome = 'complete' if total == length else 'short read'
    except OSError as error:
        outcome = 'OSError %s' % error
    environ['wsgi.errors'].write('body ended after %d of %d bytes: %s\n' % (total, length, outcome))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'read %d bytes\n' % total]


def echo_all(environ, start_response):
    # read() to EOF (not behind the validator, which requires a size): a chunked body has no
    # CONTENT_LENGTH, wsgi.input_terminated says the input ends.
    assert environ['wsgi.input_terminated']
    body = environ['wsgi.input'].read()
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('X-Content-Length', environ.get('CONTENT_LENGTH', 'absent') or 'empty')])
    return [body]


def own_date_server(environ, start_response):
    # An app that names itself and dates its answer: a front keeps both (nginx's uwsgi module passes them).
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Date', 'Thu, 01 Jan 2015 00:00:00 GMT'),
                              ('Server', 'app/1.0')])
    return [b'mine\n']


def ignore_body_late(environ, start_response):
    # Answers after the whole (small) body has likely arrived and filled the worker's queue, unread.
    time.sleep(0.2)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ignored %s bytes\n' % environ.get('CONTENT_LENGTH', '0').encode()]


def file_wrapper_raw(environ, start_response):
    # Not behind the validator, so the worker sees its own FileWrapper and can sendfile it.
    path = environ['QUERY_STRING'].partition('=')[2]
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return environ['wsgi.file_wrapper'](open(path, 'rb'), 32768)


def reason_phrase(environ, start_response):
    start_response('299 Okay-ish, with spaces', [('Content-Type', 'text/plain')])
    return [b'reason kept\n']


_ticks = [0]
def _tick():
    while True:
        _ticks[0] += 1
        time.sleep(0.01)
threading.Thread(target=_tick, daemon=True).start()

def ticks(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(_ticks[0]).encode()]


INPUT_BODY = b'first line\nsecond\n\nfourth line is longer\nx' * 3000


def input_semantics(environ, start_response):
    # The same calls on wsgi.input and on io's buffered reader over the same bytes: the results must agree (not
    # under the validator, which only allows read() with a size).
    import io
    def run(stream):
        results = []
        for name, argument in [('read', 0), ('readline', 3), ('readline', -1), ('read', 2), ('readline', None),
                               ('readline', 0), ('read', 7), ('readlines', 30), ('read', 70000), ('readline', 5)]:
            results.append(repr(getattr(stream, name)(argument)))
        results.append(repr(stream.readline()))
        results.append(repr(stream.read1(0)))
        target = bytearray(25)
        count = stream.readinto(target)
        results.append(repr((count, bytes(target[:count]))))
        try:
            stream.read(-2)
            results.append('read(-2) accepted')
        except ValueError as error:
            results.append('ValueError: %s' % error)
        results.append(repr(list(stream)[:3]))
        results.append(repr(stream.read()))
        results.append(repr(stream.read(-1)))
        results.append(repr(stream.readline()))
        return results
    ours = run(environ['wsgi.input'])
    theirs = run(io.BufferedReader(io.BytesIO(INPUT_BODY)))
    body = json.dumps({'same': ours == theirs, 'ours': ours[:8], 'io': theirs[:8]}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]

def input_readinto(environ, start_response):
    # readinto() and read1() (werkzeug and others use them) deliver the whole body, in order.
    stream = environ['wsgi.input']
    buffer = bytearray(1000)
    parts = []
    while True:
        count = stream.readinto(buffer)
        if not count:
            break
        parts.append(bytes(buffer[:count]))
        part = stream.read1(333)
        parts.append(part)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'same' if b''.join(parts) == INPUT_BODY else b'different']


IMPORTED_AS = (os.getuid(), os.geteuid(), os.getgid())


def whoami(environ, start_response):
    """Who imported this module and who runs the request: --uid/--gid must hold for both."""
    body = json.dumps({'imported_as': IMPORTED_AS, 'runs_as': (os.getuid(), os.geteuid(), os.getgid()),
                       'started_as': os.environ.get('KEEL_TEST_STARTED_AS')}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def by_path(environ, start_response):
    """/NAME/... runs this module's callable NAME: one worker serves several of the apps above."""
    name = environ['PATH_INFO'].split('/')[1]
    return globals()[name](environ, start_response)


def stuck_in_report():
    time.sleep(60)

def stuck_holding_the_gil():
    import re
    # Catastrophic backtracking: the re engine never lets the GIL go, for far longer than any test waits.
    return re.match(r'(a+)+$', 'a' * 40 + 'b')

def stuck(environ, start_response):
    if environ['PATH_INFO'] == '/gil':
        stuck_holding_the_gil()
    else:
        stuck_in_report()
    start_response('200 OK', [])
    return [b'unreachable']
"""#

    static let flaskSource = #"""
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route('/')
def index():
    return 'Hello from Flask\n'


@app.route('/users/<int:user_id>')
def user(user_id):
    return jsonify(id=user_id, name='user%d' % user_id, args=request.args.to_dict())


@app.route('/form', methods=['POST'])
def form():
    return jsonify(name=request.form['name'], tags=request.form.getlist('tag'))


@app.route('/old')
def old():
    return redirect(url_for('index'))
"""#

    /// A temp directory holding the test apps module and the Flask app; removed by the caller.
    static func makeDirectory() throws -> String {
        let directory = try Harness.makeTempDirectory()
        try source.write(toFile: directory + "/\(module).py", atomically: true, encoding: .utf8)
        try flaskSource.write(toFile: directory + "/flask_app.py", atomically: true, encoding: .utf8)
        return directory
    }
}
