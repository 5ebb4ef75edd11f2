import Foundation

/// Apps the async-worker tests serve (raw ASGI, FastAPI/Starlette, gevent WSGI), written to a temp directory as one
/// module, and the venv with FastAPI, gevent, uvloop and websockets that Tests/run.sh makes from PyPI.
enum AsyncTestApps {
    static let module = "keel_async_apps"

    /// `.build/test-venv` beside the package (or `$KEEL_TEST_VENV`): made by Tests/run.sh with /usr/bin/python3.
    static var venv: String {
        if let given = ProcessInfo.processInfo.environment["KEEL_TEST_VENV"] { return given }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/test-venv").path
    }

    /// Fails with what to run when the venv is missing.
    static func requireVenv() throws -> String {
        let python = venv + "/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw HarnessError("no test venv at \(venv): run Tests/run.sh (it makes it with pip from PyPI)")
        }
        let check = try ChildProcess.run(python, ["-c", "import fastapi, gevent, websockets, uvloop"], seconds: 60)
        guard check.code == 0 else {
            throw HarnessError("the test venv \(venv) lacks fastapi/gevent/websockets/uvloop: run Tests/run.sh")
        }
        return venv
    }

    static func makeDirectory() throws -> String {
        let directory = try Harness.makeTempDirectory()
        try source.write(toFile: directory + "/\(module).py", atomically: true, encoding: .utf8)
        try webSocketClient.write(toFile: directory + "/ws_client.py", atomically: true, encoding: .utf8)
        return directory
    }

    /// The `websockets` client the WebSocket tests drive: `ws_client.py URI SCENARIO [GO-FILE]`, one line of JSON out.
    static let webSocketClient = #"""
import asyncio, json, os, sys, websockets

async def echo(uri):
    out = {}
    async with websockets.connect(uri, max_size=None, subprotocols=['chat'], ping_interval=None) as ws:
        out['subprotocol'] = ws.subprotocol
        await ws.send('hello')
        out['text'] = await ws.recv()
        await ws.send(bytes(range(256)))
        out['binary'] = (await ws.recv()) == bytes(range(256))
        big = bytes(i % 251 for i in range(1 << 20))
        await ws.send(big)
        out['big'] = (await ws.recv()) == big
        await ws.send('scope')
        out['scope'] = json.loads(await ws.recv())
        pong = await ws.ping(b'are you there')
        await asyncio.wait_for(pong, 5)
        out['pong'] = True
        await ws.send('close-please')
        try:
            await ws.recv()
        except websockets.ConnectionClosed as closed:
            out['close'] = [closed.rcvd.code, closed.rcvd.reason]
    return out

async def hold(uri):
    # Echo, say so, wait for the file named by argv[3] (the test HUPs keel meanwhile), echo again on the same connection.
    out = {}
    async with websockets.connect(uri, ping_interval=None) as ws:
        await ws.send('before')
        out['before'] = await ws.recv()
        print('ready', flush=True)
        while not os.path.exists(sys.argv[3]):
            await asyncio.sleep(0.05)
        await ws.send('after')
        out['after'] = await ws.recv()
    return out

async def oversized(uri):
    async with websockets.connect(uri, max_size=None, ping_interval=None) as ws:
        await ws.send(b'x' * 100000)
        try:
            await ws.recv()
            return {'close': None}
        except websockets.ConnectionClosed as closed:
            return {'close': closed.rcvd.code if closed.rcvd else None}

async def deny(uri):
    try:
        async with websockets.connect(uri) as ws:
            return {'status': 101}
    except websockets.InvalidStatus as refused:
        return {'status': refused.response.status_code}

scenario = {'echo': echo, 'hold': hold, 'oversized': oversized, 'deny': deny}[sys.argv[2]]
print(json.dumps(asyncio.run(asyncio.wait_for(scenario(sys.argv[1]), 30))), flush=True)
"""#

    static let source = #"""
import asyncio, json, os, time

STATE_DIR = os.environ.get('KEEL_TEST_STATE', '/tmp')


def mark(name, text='mark'):
    with open(os.path.join(STATE_DIR, name), 'a') as f:
        f.write(text + '\n')


# ------------------------------------------------------------------ raw ASGI

running = 0
most = 0


async def raw(scope, receive, send):
    global running, most
    if scope['type'] == 'lifespan':
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                scope['state']['started'] = 'yes'
                mark('startup')
                await send({'type': 'lifespan.startup.complete'})
            elif message['type'] == 'lifespan.shutdown':
                mark('shutdown')
                await send({'type': 'lifespan.shutdown.complete'})
                return
    path = scope['path']
    if path == '/sleep':
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(float(scope['query_string'] or b'1'))
        finally:
            running -= 1
        return await text(send, 'slept')
    if path == '/most':
        return await text(send, str(most))
    if path == '/scope':
        shown = {k: (v.decode('latin-1') if isinstance(v, bytes) else v) for k, v in scope.items()
                 if k not in ('headers', 'state')}
        shown['headers'] = [[n.decode('latin-1'), v.decode('latin-1')] for n, v in scope['headers']]
        shown['state'] = dict(scope.get('state', {}))
        return await text(send, json.dumps(shown), b'application/json')
    if path == '/chunks':
        sizes = []
        while True:
            message = await receive()
            sizes.append(len(message['body']))
            if not message['more_body']:
                break
        return await text(send, json.dumps({'total': sum(sizes), 'messages': len(sizes)}), b'application/json')
    if path == '/until-disconnect':
        await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain')]})
        await send({'type': 'http.response.body', 'body': b'waiting\n', 'more_body': True})
        while True:
            message = await receive()
            if message['type'] == 'http.disconnect':
                mark('disconnected', scope['query_string'].decode())
                return
    if path == '/big':
        await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'application/octet-stream')]})
        block = b'x' * 65536
        for _ in range(int(scope['query_string'] or b'16')):
            await send({'type': 'http.response.body', 'body': block, 'more_body': True})
        await send({'type': 'http.response.body', 'body': b''})
        return
    if path == '/no-response':
        return
    if path == '/raise':
        raise RuntimeError('raised on purpose')
    return await text(send, 'Hello, World!')


async def text(send, body, content_type=b'text/plain'):
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', content_type)]})
    await send({'type': 'http.response.body', 'body': body.encode() if isinstance(body, str) else body})


async def failing_startup(scope, receive, send):
    if scope['type'] == 'lifespan':
        await receive()
        await send({'type': 'lifespan.startup.failed', 'message': 'the database is unreachable'})
        return
    await text(send, 'never')


async def no_lifespan(scope, receive, send):
    if scope['type'] != 'http':
        raise ValueError('only http')
    await text(send, 'fine without lifespan')


async def silent_lifespan(scope, receive, send):
    if scope['type'] != 'http':
        return
    await text(send, 'fine after a silent lifespan')


def not_async(scope, receive, send):
    pass


async def two_arguments(scope, receive):
    pass


# ------------------------------------------------------------------ WebSocket echo

async def ws_echo(scope, receive, send):
    if scope['type'] == 'lifespan':
        return await raw(scope, receive, send)
    if scope['type'] == 'http':
        return await text(send, 'plain http answer')
    message = await receive()
    assert message['type'] == 'websocket.connect'
    if scope['path'] == '/deny':
        return await send({'type': 'websocket.close'})
    if scope['path'] == '/bad-header':
        return await send({'type': 'websocket.accept', 'headers': [(b'x-split', b'a\r\nInjected: yes')]})
    await send({'type': 'websocket.accept', 'subprotocol': (scope['subprotocols'] or [None])[0]})
    while True:
        message = await receive()
        if message['type'] == 'websocket.disconnect':
            mark('ws-disconnect', str(message['code']))
            return
        if message.get('text') == 'close-please':
            return await send({'type': 'websocket.close', 'code': 4001, 'reason': 'asked'})
        if message.get('text') == 'scope':
            shown = {k: v for k, v in scope.items() if k in ('type', 'scheme', 'path', 'subprotocols', 'http_version')}
            await send({'type': 'websocket.send', 'text': json.dumps(shown)})
            continue
        await send({'type': 'websocket.send', **{k: v for k, v in message.items() if k in ('text', 'bytes') and v is not None}})


# ------------------------------------------------------------------ FastAPI / Starlette

def make_fastapi():
    from contextlib import asynccontextmanager
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    @asynccontextmanager
    async def lifespan(app):
        yield {'greeting': 'hello from lifespan'}

    app = FastAPI(lifespan=lifespan)

    @app.get('/items/{item_id}')
    async def item(item_id: int, q: str = ''):
        return {'item_id': item_id, 'q': q}

    @app.get('/state')
    async def state(request: Request):
        return {'greeting': request.state.greeting}

    @app.get('/stream')
    async def stream():
        async def parts():
            for i in range(5):
                yield b'part %d\n' % i
                await asyncio.sleep(0)
        return StreamingResponse(parts(), media_type='text/plain')

    @app.post('/upload')
    async def upload(request: Request):
        total = chunks = 0
        async for chunk in request.stream():
            total += len(chunk)
            chunks += 1 if chunk else 0
        return {'bytes': total, 'chunks': chunks}

    @app.get('/boom')
    async def boom():
        raise ValueError('boom on purpose')

    @app.get('/disconnect')
    async def disconnect(request: Request):
        while not await request.is_disconnected():
            await asyncio.sleep(0.05)
        mark('fastapi-disconnected')
        return {}

    return app


def make_starlette():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def hello(request):
        return PlainTextResponse('hello from starlette')

    async def user(request):
        return JSONResponse({'user': request.path_params['name'], 'page': request.query_params.get('page')})

    return Starlette(routes=[Route('/', hello), Route('/users/{name}', user)])


try:
    fastapi_app = make_fastapi()
    starlette_app = make_starlette()
except ImportError:
    pass


# ------------------------------------------------------------------ gevent (WSGI)

greenlets = 0
greenlets_most = 0


def simple_app(environ, start_response):
    """The seed's simple_app: time.sleep is patched by gevent, so sleeping requests overlap."""
    global greenlets, greenlets_most
    path = environ['PATH_INFO']
    if path == '/most':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(greenlets_most).encode()]
    if path == '/echo':
        data = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d %d' % (len(data), environ['wsgi.multithread'])]
    if path == '/lines':
        lines = list(environ['wsgi.input'])
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d' % len(lines)]
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        def parts():
            try:
                for i in range(3):
                    time.sleep(0.01)
                    yield b'chunk %d\n' % i
            finally:
                mark('closed')
        return parts()
    if path == '/file':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return environ['wsgi.file_wrapper'](open(__file__, 'rb'))
    if path == '/empty':
        time.sleep(0.3)
        start_response('204 No Content', [])
        return []
    if path == '/write':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        write(b'written ')
        return [b'and returned']
    greenlets += 1
    greenlets_most = max(greenlets_most, greenlets)
    try:
        time.sleep(float(environ.get('QUERY_STRING') or 1))
    finally:
        greenlets -= 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello World\n']
"""#
}
