import KeelHTTP
import UWSGI

/// The vars keel sends on the uwsgi wire: KeelHTTP's `CGIVars` (nginx's `uwsgi_params`, then every request header
/// as HTTP_*), filled with what the front knows of the connection and the route.
enum UWSGIParams {
    static func vars(for request: ClientRequest, serverName: String, contentLength: Int64) -> [UWSGIVar] {
        let connection = request.connection
        return CGIVars.make(
            head: request.head, target: request.target, bodyLength: contentLength,
            remote: (connection.remoteAddress, String(connection.remotePort)),
            server: (serverName, String(connection.serverPort)), isTLS: connection.isTLS)
    }
}
