"""A local HTTP server for tests (repositories of templates and images)."""

import http.server
import threading


class FileServer:
    """http.server in a thread serving files (path -> bytes, or (announced length,
    bytes) to cut a download off), counting GETs per path."""

    def __init__(self, files: dict):
        self.files, self.gets = files, {}
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
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
