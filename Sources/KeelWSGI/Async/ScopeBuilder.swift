import CPython
import KeelApp

/// The ASGI http scope of a request, made from the CGI vars the connection derived (HTTP socket) or keel/nginx sent
/// (uwsgi), so both wires give an app the same scope. Keys and constant values are made once per worker. Call with
/// the GIL held.
final class ScopeBuilder: @unchecked Sendable {
    private let keys: [String: PythonObject]
    private let asgi: PythonObject
    private let http: PythonObject
    private let https: PythonObject
    private let typeHTTP: PythonObject
    private let typeWebSocket: PythonObject
    private let ws: PythonObject
    private let wss: PythonObject
    private let versions: [String: PythonObject]

    init() {
        var keys: [String: PythonObject] = [:]
        for name in [
            "type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string", "root_path",
            "headers", "client", "server", "subprotocols",
        ] {
            keys[name] = PythonObject(owned: PyUnicode_InternFromString(name))
        }
        self.keys = keys
        let asgi = PyDict_New()!
        // Bound to names: a temporary's reference could be dropped before the call that copies it.
        let version = Py.string("3.0")!
        let specVersion = Py.string("2.3")!
        PyDict_SetItemString(asgi, "version", version.pointer)
        PyDict_SetItemString(asgi, "spec_version", specVersion.pointer)
        self.asgi = PythonObject(owned: asgi)
        http = PythonObject(owned: PyUnicode_InternFromString("http"))
        https = PythonObject(owned: PyUnicode_InternFromString("https"))
        typeHTTP = PythonObject(owned: PyUnicode_InternFromString("http"))
        typeWebSocket = PythonObject(owned: PyUnicode_InternFromString("websocket"))
        ws = PythonObject(owned: PyUnicode_InternFromString("ws"))
        wss = PythonObject(owned: PyUnicode_InternFromString("wss"))
        var versions: [String: PythonObject] = [:]
        for (proto, version) in [("HTTP/1.1", "1.1"), ("HTTP/1.0", "1.0"), ("HTTP/2.0", "2"), ("HTTP/2", "2")] {
            versions[proto] = PythonObject(owned: PyUnicode_InternFromString(version))
        }
        self.versions = versions
    }

    /// The scope dict (http, or websocket for an upgrade), or nil with a Python exception set.
    func make(for request: Request, webSocket: Bool = false) -> PyOwned? {
        guard let scope = PyOwned(PyDict_New()), let headers = PyOwned(PyList_New(0)) else { return nil }
        var method = "GET"
        var path = ""
        var scriptName = ""
        var query = ""
        var uri: String?
        var proto = "HTTP/1.1"
        var https = false
        var remote: (address: String?, port: String?) = (nil, nil)
        var server: (name: String?, port: String?) = (nil, nil)
        var subprotocols: String?
        for variable in request.vars {
            let name = variable.name
            switch name {
            case "REQUEST_METHOD": method = variable.value
            case "PATH_INFO": path = variable.value
            case "SCRIPT_NAME": scriptName = variable.value
            case "QUERY_STRING": query = variable.value
            case "REQUEST_URI": uri = variable.value
            case "SERVER_PROTOCOL": proto = variable.value
            case "HTTPS": https = https || variable.value == "on" || variable.value == "1"
            case "REQUEST_SCHEME", "UWSGI_SCHEME": https = https || variable.value == "https"
            case "REMOTE_ADDR": remote.address = variable.value
            case "REMOTE_PORT": remote.port = variable.value
            case "SERVER_NAME": server.name = variable.value
            case "SERVER_PORT": server.port = variable.value
            case "HTTP_SEC_WEBSOCKET_PROTOCOL":
                subprotocols = variable.value
                guard append(header: "sec-websocket-protocol", variable.value, to: headers) else { return nil }
            case "CONTENT_TYPE", "CONTENT_LENGTH":
                guard !variable.value.isEmpty else { continue }
                guard append(header: name == "CONTENT_TYPE" ? "content-type" : "content-length", variable.value, to: headers)
                else { return nil }
            default:
                guard name.utf8.starts(with: "HTTP_".utf8) else { continue }
                // HTTP_X_REQUEST_ID → x-request-id (names with "_" never reach the vars: both fronts drop them).
                var headerName = ""
                headerName.unicodeScalars.append(
                    contentsOf: name.utf8.dropFirst(5).map { byte in
                        Unicode.Scalar(byte == UInt8(ascii: "_") ? UInt8(ascii: "-") : (byte >= 65 && byte <= 90 ? byte + 32 : byte))
                    })
                guard append(header: headerName, variable.value, to: headers) else { return nil }
            }
        }
        let rawPath = uri.map { uri in uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(uri[..<$0]) } ?? uri }
            ?? scriptName + path
        if webSocket {
            guard set(scope, "type", typeWebSocket.pointer), set(scope, "scheme", (https ? wss : ws).pointer),
                let list = PyOwned(PyList_New(0))
            else { return nil }
            for name in (subprotocols ?? "").split(separator: ",") {
                let trimmed = name.split(separator: " ").joined()
                guard !trimmed.isEmpty else { continue }
                guard let item = Py.string(trimmed), PyList_Append(list.pointer, item.pointer) == 0 else { return nil }
            }
            guard set(scope, "subprotocols", list.pointer) else { return nil }
        } else {
            guard set(scope, "type", typeHTTP.pointer), set(scope, "scheme", (https ? self.https : http).pointer),
                let methodObject = Py.string(method), set(scope, "method", methodObject.pointer)
            else { return nil }
        }
        guard set(scope, "asgi", asgi.pointer),
            set(scope, "http_version", (versions[proto] ?? versions["HTTP/1.1"]!).pointer),
            let pathObject = Py.string(scriptName + path), set(scope, "path", pathObject.pointer),
            let raw = bytes(rawPath), set(scope, "raw_path", raw.pointer),
            let queryObject = bytes(query), set(scope, "query_string", queryObject.pointer),
            let root = Py.string(scriptName), set(scope, "root_path", root.pointer),
            set(scope, "headers", headers.pointer),
            let client = endpoint(remote.address, remote.port), set(scope, "client", client.pointer),
            let serverObject = endpoint(server.name, server.port ?? (https ? "443" : "80")),
            set(scope, "server", serverObject.pointer)
        else { return nil }
        return scope
    }

    private func set(_ dict: borrowing PyOwned, _ key: String, _ value: PyPointer) -> Bool {
        PyDict_SetItem(dict.pointer, keys[key]!.pointer, value) == 0
    }

    private func append(header name: String, _ value: String, to list: borrowing PyOwned) -> Bool {
        guard let pair = PyOwned(PyTuple_New(2)), let nameObject = bytes(name), let valueObject = bytes(value) else {
            return false
        }
        PyTuple_SetItem(pair.pointer, 0, nameObject.take())
        PyTuple_SetItem(pair.pointer, 1, valueObject.take())
        return PyList_Append(list.pointer, pair.pointer) == 0
    }

    private func bytes(_ text: String) -> PyOwned? {
        var text = text
        let made: PyPointer? = text.withUTF8 { utf8 in
            PyBytes_FromStringAndSize(utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, utf8.count)
        }
        return PyOwned(made)
    }

    /// (host, port) as ASGI gives client and server, or None when unknown (a unix socket's peer).
    private func endpoint(_ host: String?, _ port: String?) -> PyOwned? {
        guard let host, !host.isEmpty, let port = port.flatMap({ Int($0) }) else {
            return PyOwned(keel_py_new_ref(Py.none))
        }
        guard let tuple = PyOwned(PyTuple_New(2)), let hostObject = Py.string(host) else { return nil }
        PyTuple_SetItem(tuple.pointer, 0, hostObject.take())
        PyTuple_SetItem(tuple.pointer, 1, PyLong_FromLong(port))
        return tuple
    }
}
