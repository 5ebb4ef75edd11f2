/// The Python half of keel-pool's async workers: the loop the app runs on (asyncio or uvloop for ASGI apps, gevent's
/// hub for WSGI apps), woken through an eventfd when Swift has news, and the ASGI/WSGI callables of each request.
/// Swift does the socket I/O and builds the scope or environ (`_keel_async`, `AsyncBridge`); what is left here is
/// what the specs describe in Python terms: receive/send, lifespan, start_response under gevent.
enum AsyncDriverModule {
    static let name = "_keel_async_driver"

    static let source = #"""
import sys, os, traceback
# On the worker's main thread, at load: threading takes the thread that first imports it for the main one, and
# uvloop installs signal wake-ups when it believes it runs there (which only the real main thread may do).
import threading
import _keel_async as K
from _keel_wsgi import LoadError

START, BODY, DISCONNECT, WRITABLE, STOP, DUMP = 0, 1, 2, 3, 4, 5


class ClientDisconnected(OSError):
    """send() after the client left (ASGI 2.4: a server-specific OSError)."""


K.set_disconnected_error(ClientDisconnected)


def log_exception(what, error):
    text = ''.join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip('\n')
    K.log('%s:\n%s' % (what, text))


# ---------------------------------------------------------------- ASGI on asyncio / uvloop

def check_asgi_app(app, flag):
    """None, or why `app` is not an ASGI 3 app (a coroutine function of scope, receive, send)."""
    import inspect
    target = app
    if not inspect.isfunction(app) and not inspect.ismethod(app) and hasattr(app, '__call__') \
            and not inspect.isclass(app):
        target = app.__call__
    if inspect.isclass(app):
        return ("%s: '%s' is a class: ASGI 2 apps (a class taking the scope) are not served; give an ASGI 3 app, "
                "an async function of (scope, receive, send)" % (flag, app.__name__))
    if not inspect.iscoroutinefunction(target):
        return ("%s: the app is a %s, not an async function of (scope, receive, send) (give an ASGI 3 app, "
                "or serve a WSGI app with --wsgi)" % (flag, type(app).__name__))
    try:
        parameters = [p for p in inspect.signature(target).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        variadic = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if not variadic and len(parameters) != 3:
        return ("%s: the app takes %d arguments; an ASGI 3 app takes three (scope, receive, send)"
                % (flag, len(parameters)))
    return None


def new_loop(kind):
    import asyncio
    if kind in ('auto', 'uvloop'):
        try:
            import uvloop
        except ImportError:
            if kind == 'uvloop':
                raise LoadError("--loop uvloop: uvloop is not importable from the app's environment; install uvloop "
                                  "in the venv given by --virtualenv, or give --loop asyncio")
        else:
            return uvloop.new_event_loop(), 'uvloop'
    return asyncio.new_event_loop(), 'asyncio'


class HTTPCycle:
    """One http scope: receive() and send() over the request's exchange (a capsule)."""
    __slots__ = ('cap', 'loop', 'head', 'started', 'complete', 'gone', 'waiters')

    def __init__(self, cap, loop):
        self.cap = cap
        self.loop = loop
        self.head = None
        self.started = False
        self.complete = False
        self.gone = False
        self.waiters = []

    def wake(self, kind):
        if kind == DISCONNECT:
            self.gone = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self):
        # receive() and send() may wait at once (a handler listening for the disconnect while it streams).
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        await waiter

    async def receive(self):
        while True:
            if self.gone or self.complete:
                return {'type': 'http.disconnect'}
            got = K.body(self.cap)
            if got is None:
                await self.wait()
                continue
            if got is False:
                self.gone = True
                return {'type': 'http.disconnect'}
            return {'type': 'http.request', 'body': got[0], 'more_body': got[1]}

    async def send(self, message):
        kind = message['type']
        if kind == 'http.response.body':
            if not self.started:
                raise RuntimeError("ASGI: 'http.response.body' sent before 'http.response.start'")
            if self.complete:
                raise RuntimeError("ASGI: 'http.response.body' sent after the response was complete")
            body = message.get('body', b'')
            if type(body) is not bytes:
                body = bytes(body)
            more = bool(message.get('more_body', False))
            head = self.head
            self.head = None
            if not more:
                self.complete = True
            try:
                if head is None:
                    blocked = K.send(self.cap, None, None, body, more)
                else:
                    blocked = K.send(self.cap, head[0], head[1], body, more)
            except ClientDisconnected:
                self.gone = True
                raise
            if not more:
                self.wake(None)
            elif blocked:
                while blocked and not self.gone:
                    await self.wait()
                    blocked = K.blocked(self.cap)
                if self.gone:
                    raise ClientDisconnected('the client closed the connection')
        elif kind == 'http.response.start':
            if self.started:
                raise RuntimeError("ASGI: 'http.response.start' sent twice")
            status = message['status']
            if type(status) is not int:
                raise TypeError("ASGI: 'status' must be an int, not %s" % type(status).__name__)
            self.started = True
            self.head = (status, message.get('headers', ()))
        elif kind == 'http.response.trailers':
            pass  # trailers were not asked for (no 'trailers' in the start message's contract here): dropped
        else:
            raise RuntimeError("ASGI: unexpected message type %r in an http scope" % (kind,))


class WebSocketCycle:
    """One websocket scope: the handshake (accept, or close/deny as a 403), then messages over the exchange."""
    __slots__ = ('cap', 'loop', 'state', 'gone', 'waiters', 'connect_given', 'complete')

    def __init__(self, cap, loop):
        self.cap = cap
        self.loop = loop
        self.state = 'connecting'   # connecting → accepted → closed (or denied)
        self.gone = False
        self.waiters = []
        self.connect_given = False
        self.complete = False

    wake = HTTPCycle.wake
    wait = HTTPCycle.wait

    async def receive(self):
        if not self.connect_given:
            self.connect_given = True
            return {'type': 'websocket.connect'}
        while True:
            got = K.ws_receive(self.cap)
            if got is None:
                if self.state == 'denied' or (self.gone and self.state == 'connecting'):
                    return {'type': 'websocket.disconnect', 'code': 1006, 'reason': ''}
                await self.wait()
                continue
            if got[0] == 0:
                return {'type': 'websocket.receive', 'text': got[1]}
            if got[0] == 1:
                return {'type': 'websocket.receive', 'bytes': got[1]}
            self.state = 'closed'
            return {'type': 'websocket.disconnect', 'code': got[1], 'reason': got[2]}

    async def send(self, message):
        kind = message['type']
        if kind == 'websocket.send':
            if self.state == 'connecting':
                raise RuntimeError("ASGI: 'websocket.send' before 'websocket.accept'")
            if self.state != 'accepted':
                raise ClientDisconnected('the WebSocket is closed')
            text = message.get('text')
            data = text if text is not None else message.get('bytes')
            if data is None:
                raise RuntimeError("ASGI: 'websocket.send' needs 'bytes' or 'text'")
            try:
                blocked = K.ws_send(self.cap, data)
            except ClientDisconnected:
                self.gone = True
                raise
            while blocked and not self.gone:
                await self.wait()
                blocked = K.blocked(self.cap)
        elif kind == 'websocket.accept':
            if self.state != 'connecting':
                raise RuntimeError("ASGI: 'websocket.accept' sent twice or after a close")
            self.state = 'accepted'
            K.ws_accept(self.cap, message.get('subprotocol'), message.get('headers') or [])
        elif kind == 'websocket.close':
            if self.state == 'connecting':
                # A close before the accept denies the handshake: an HTTP 403, as uvicorn answers.
                self.state = 'denied'
                self.complete = True
                try:
                    K.send(self.cap, 403, [(b'content-type', b'text/plain')], b'Forbidden\n', False)
                except ClientDisconnected:
                    self.gone = True
                    raise
            elif self.state == 'accepted':
                self.state = 'closed'
                K.ws_send(self.cap, message.get('code', 1000), message.get('reason') or '')
        else:
            raise RuntimeError("ASGI: unexpected message type %r in a websocket scope" % (kind,))


class Lifespan:
    """The lifespan scope, as uvicorn's 'auto': an app that raises before receiving anything has no lifespan."""

    def __init__(self, app, loop, state):
        import asyncio
        self.app = app
        self.loop = loop
        self.state = state
        self.inbox = asyncio.Queue()
        self.outcome = {}
        self.received = False
        self.unsupported = False
        self.events = {}
        self.task = None

    async def receive(self):
        self.received = True
        return await self.inbox.get()

    async def send(self, message):
        kind = message.get('type')
        self.outcome[kind] = message.get('message', '')
        event = self.events.get(kind.rsplit('.', 1)[0] if kind else None)
        if event is not None:
            event.set()

    async def main(self):
        scope = {'type': 'lifespan', 'asgi': {'version': '3.0', 'spec_version': '2.0'}, 'state': self.state}
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as error:
            if not self.received:
                self.unsupported = True
                K.log('the app does not support the ASGI lifespan protocol (it raised %s before receiving); '
                      'serving without it' % type(error).__name__)
            else:
                self.outcome.setdefault('error', error)
        finally:
            for event in self.events.values():
                event.set()

    async def phase(self, name):
        """None, or (summary, details) when the phase failed."""
        import asyncio
        if self.unsupported or (self.task is not None and self.task.done()):
            return None  # no lifespan, or the app's lifespan returned after its startup: nothing to wait for
        event = self.events['lifespan.' + name] = asyncio.Event()
        if self.task is None:
            self.task = self.loop.create_task(self.main())
        await self.inbox.put({'type': 'lifespan.' + name})
        await event.wait()
        if self.unsupported:
            return None
        if 'lifespan.%s.failed' % name in self.outcome:
            return ('the app\'s lifespan %s failed: %s' % (name, self.outcome['lifespan.%s.failed' % name]), '')
        if 'error' in self.outcome:
            error = self.outcome.pop('error')
            text = ''.join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip('\n')
            return ('the app\'s lifespan %s raised %s' % (name, ''.join(
                traceback.format_exception_only(type(error), error)).strip()), text)
        if 'lifespan.%s.complete' % name not in self.outcome:
            if name == 'startup':
                # Returned without a word (`if scope['type'] != 'http': return`): no lifespan, as uvicorn's 'auto'.
                self.unsupported = True
                K.log('the app returned from the lifespan scope without answering; serving without lifespan')
                return None
            return ('the app\'s lifespan task ended without answering lifespan.%s' % name, '')
        return None


def dump_tasks(loop):
    """--harakiri: where every task's coroutine is, down the await chain (Task.print_stack shows only the top)."""
    import asyncio, linecache
    try:
        lines = []
        for task in asyncio.all_tasks(loop):
            lines.append('coroutine stack of task %s (most recent call last):' % task.get_name())
            coro = task.get_coro()
            while coro is not None:
                frame = getattr(coro, 'cr_frame', None) or getattr(coro, 'gi_frame', None) or getattr(coro, 'ag_frame', None)
                if frame is None:
                    break
                code = frame.f_code
                lines.append('  File "%s", line %d, in %s' % (code.co_filename, frame.f_lineno, code.co_name))
                source = linecache.getline(code.co_filename, frame.f_lineno).strip()
                if source:
                    lines.append('    ' + source)
                coro = getattr(coro, 'cr_await', None) or getattr(coro, 'gi_yieldfrom', None) or getattr(coro, 'ag_await', None)
        sys.stderr.write('\n'.join(lines) + '\n')
        sys.stderr.flush()
    finally:
        K.stacks_dumped()


def serve_asgi(app, wake_fd, loop_kind):
    """The worker's ASGI loop, on a thread of its own: lifespan startup, then requests until STOP, then shutdown."""
    import asyncio
    try:
        loop, chosen = new_loop(loop_kind)
    except LoadError as error:
        K.started((error.args[0], ''))
        return
    asyncio.set_event_loop(loop)
    state = {}
    lifespan = Lifespan(app, loop, state)
    failure = loop.run_until_complete(lifespan.phase('startup'))
    K.started(failure)
    if failure is not None:
        return
    K.log('ASGI app serving on %s' % chosen)
    cycles = {}

    async def run_websocket(rid, cycle, scope):
        failed = False
        try:
            await app(scope, cycle.receive, cycle.send)
        except BaseException as error:
            failed = True
            if not (cycle.gone and isinstance(error, OSError)):
                log_exception('app failed on WebSocket %s' % scope['path'], error)
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            del cycles[rid]
            if cycle.state == 'connecting':
                if not failed and not cycle.gone:
                    K.log('app returned without accepting or closing the WebSocket %s' % scope['path'])
                K.fail(cycle.cap)
            elif cycle.state != 'denied':
                K.ws_end(cycle.cap, failed)

    async def run(rid, cycle, scope):
        try:
            await app(scope, cycle.receive, cycle.send)
        except BaseException as error:
            if not (cycle.gone and isinstance(error, OSError)):
                log_exception('app failed on %s %s' % (scope['method'], scope['path']), error)
            K.fail(cycle.cap)
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if not cycle.complete:
                if not cycle.gone:
                    K.log('app returned without completing its response to %s %s' % (scope['method'], scope['path']))
                K.fail(cycle.cap)
            elif cycle.gone:
                K.fail(cycle.cap)  # its final send found the client gone: the request still has to end
        finally:
            del cycles[rid]

    def on_wake():
        for event in K.take():
            kind = event[0]
            if kind == START:
                rid, cap, scope = event[1], event[2], event[3]
                if state:
                    scope['state'] = state.copy()
                if scope['type'] == 'websocket':
                    cycle = cycles[rid] = WebSocketCycle(cap, loop)
                    loop.create_task(run_websocket(rid, cycle, scope))
                else:
                    cycle = cycles[rid] = HTTPCycle(cap, loop)
                    loop.create_task(run(rid, cycle, scope))
            elif kind == STOP:
                loop.stop()
            elif kind == DUMP:
                dump_tasks(loop)
            else:
                cycle = cycles.get(event[1])
                if cycle is not None:
                    cycle.wake(kind)

    loop.add_reader(wake_fd, on_wake)
    loop.run_forever()
    loop.remove_reader(wake_fd)
    failure = loop.run_until_complete(lifespan.phase('shutdown'))
    if failure is not None:
        K.log(failure[0] + ('\n' + failure[1] if failure[1] else ''))
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


# ---------------------------------------------------------------- WSGI on gevent

def patch_gevent(patch):
    try:
        import gevent
        from gevent import monkey
    except ImportError as error:
        raise LoadError("--gevent: gevent is not importable from the app's environment (%s); install gevent in the "
                          "venv given by --virtualenv" % error)
    if patch:
        monkey.patch_all()


class GeventInput:
    """wsgi.input under gevent: reads wait for the body on the hub, never blocking the worker's loop thread."""

    def __init__(self, cycle):
        self.cycle = cycle
        self.buffer = b''
        self.ended = False

    def _fill(self):
        if self.ended:
            return False
        while True:
            got = K.body(self.cycle.cap)
            if got is None:
                self.cycle.wait()
                continue
            if got is False:
                raise OSError('the client closed the connection before the end of the request body')
            data, more = got
            self.buffer += data
            if not more:
                self.ended = True
            return True

    def read(self, size=-1):
        if size is None or size < 0:
            while self._fill():
                pass
            data, self.buffer = self.buffer, b''
            return data
        while len(self.buffer) < size and self._fill():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read1(self, size=-1):
        if not self.buffer:
            self._fill()
        if size is None or size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def readline(self, size=-1):
        while True:
            end = self.buffer.find(b'\n')
            if end >= 0 or (size is not None and 0 <= size <= len(self.buffer)) or not self._fill():
                break
        cut = len(self.buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            cut = min(cut, size)
        data, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return data

    def readinto(self, buffer):
        view = memoryview(buffer).cast('B')
        data = self.read1(len(view)) if len(view) else b''
        view[:len(data)] = data
        return len(data)

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def readable(self):
        return True


class GeventCycle:
    """One WSGI request in a greenlet: start_response/write send through the exchange, waits yield to the hub."""

    def __init__(self, cap, event_class):
        self.cap = cap
        self.event = event_class()
        self.head = None
        self.sent = False
        self.complete = False
        self.gone = False

    def wake(self, kind):
        if kind == DISCONNECT:
            self.gone = True
        self.event.set()

    def wait(self):
        self.event.wait()
        self.event.clear()

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.head is not None:
            raise AssertionError('start_response() called a second time without exc_info')
        if type(status) is not str:
            raise TypeError('status must be a str, not %s' % type(status).__name__)
        code = status.split(' ', 1)[0]
        if len(code) != 3 or not code.isdigit():
            raise ValueError('status %r does not start with a three-digit code' % status)
        self.head = (int(code), status, headers)
        return self.write

    def _send(self, data, more):
        if self.gone:
            raise ClientDisconnected('the client closed the connection')
        try:
            if not self.sent:
                if self.head is None:
                    raise AssertionError('the app sent body bytes before calling start_response()')
                self.sent = True
                head = self.head
                blocked = K.send(self.cap, head[0], head[2], data, more, head[1])
            else:
                blocked = K.send(self.cap, None, None, data, more)
        except ClientDisconnected:
            self.gone = True
            raise
        while blocked and more and not self.gone:
            self.wait()
            blocked = K.blocked(self.cap)
        if self.gone and more:
            raise ClientDisconnected('the client closed the connection')

    def write(self, data):
        if type(data) is not bytes:
            raise TypeError('write() takes bytes, not %s' % type(data).__name__)
        if data:
            self._send(data, True)

    def finish(self):
        self._send(b'', False)
        self.complete = True


def serve_gevent(app, wake_fd):
    import gevent, gevent.event
    from gevent import get_hub
    hub = get_hub()
    cycles = {}

    def run(rid, cycle, environ):
        result = None
        try:
            result = app(environ, cycle.start_response)
            for chunk in result:
                if type(chunk) is not bytes:
                    raise TypeError('the app yielded %s, not bytes' % type(chunk).__name__)
                if chunk:
                    cycle._send(chunk, True)
            cycle.finish()
        except BaseException as error:
            if not cycle.gone:
                log_exception('app failed on %s %s' % (environ.get('REQUEST_METHOD'), environ.get('PATH_INFO')), error)
            # Also after a final send that failed: the connection counts the request as done either way.
            K.fail(cycle.cap)
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                try:
                    close()
                except BaseException as error:
                    log_exception('the response\'s close() raised', error)
            del cycles[rid]

    stopped = gevent.event.Event()

    def on_wake():
        for event in K.take():
            kind = event[0]
            if kind == START:
                rid, cap, environ, has_body = event[1], event[2], event[3], event[4]
                cycle = cycles[rid] = GeventCycle(cap, gevent.event.Event)
                if has_body:
                    environ['wsgi.input'] = GeventInput(cycle)
                gevent.spawn(run, rid, cycle, environ)
            elif kind == STOP:
                stopped.set()
            elif kind == DUMP:
                try:
                    from gevent.util import format_run_info
                    sys.stderr.write('\n'.join(format_run_info()) + '\n')
                    sys.stderr.flush()
                finally:
                    K.stacks_dumped()
            else:
                cycle = cycles.get(event[1])
                if cycle is not None:
                    cycle.wake(kind)

    watcher = hub.loop.io(wake_fd, 1)
    watcher.start(on_wake)
    K.started(None)
    stopped.wait()
    watcher.stop()
"""#
}
