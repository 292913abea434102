"""A local HTTP server for tests (repositories of templates and images)."""

import http.server
import ssl
import threading
import time


class FileServer:
    """http.server in a thread serving files (path -> bytes, or (announced length,
    bytes) to cut a download off), counting GETs per path; pace slows a path down."""

    def __init__(self, files: dict, tls=None):
        """tls: (certificate file, key file) to serve HTTPS."""
        self.files, self.gets = files, {}
        self.pace: dict = {}            # path -> (bytes, seconds): sent that slowly
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):                               # noqa: N802 - http.server's name
                owner.gets[self.path] = owner.gets.get(self.path, 0) + 1
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                length, body = (body if isinstance(body, tuple) else (len(body), body))
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                pace = owner.pace.get(self.path)
                if pace is None:
                    self.wfile.write(body)
                    return
                size, pause = pace
                for start in range(0, len(body), size):
                    self.wfile.write(body[start:start + size])
                    self.wfile.flush()
                    time.sleep(pause)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d/" % (scheme, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
