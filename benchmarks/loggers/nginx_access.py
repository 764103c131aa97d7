"""An access log written by a real nginx under load: ``python nginx_access.py OUT REQUESTS``.

Starts Debian's nginx on a free loopback port with the ``combined`` format plus ``$request_time``
(the usual addition for latency figures), in front of a small upstream that answers after a few
milliseconds, and sends it REQUESTS requests over keep-alive connections from a few threads: ids
and query strings in the URLs, 404s from nginx itself, 5xx from the upstream. nginx writes OUT.
"""

from __future__ import annotations

import http.client
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

THREADS = 4
CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
  log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                   '"$http_referer" "$http_user_agent" $request_time';
  access_log {out} timed;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location /static/ {{ return 404; }}
    location /api/ {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, delayed ACKs add 40 ms to each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802
        status = 503 if "fail=1" in self.path else 200
        time.sleep(random.choice([0, 0, 0.001, 0.003, 0.008, 0.02]))
        body = b"{}" if status == 200 else b"upstream failed"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def drive(port: int, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(count):
        r = rnd.random()
        if r < 0.05:
            url = f"/static/app.{rnd.randint(1, 9)}.js"
        elif r < 0.07:
            url = f"/api/orders/{rnd.randint(1, 999)}?fail=1"
        else:
            url = rnd.choice(["/api/chat", f"/api/users/{rnd.randint(1, 5000)}", "/api/search?q=refund&page=2"])
        conn.request("GET", url, headers={"User-Agent": "loadgen/1.0", "Referer": "https://example.test/"})
        conn.getresponse().read()
    conn.close()


def main(out: str, requests: int) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    Path(out).unlink(missing_ok=True)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="upkeep-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(CONF.format(prefix=prefix, out=Path(out).resolve(), port=port, upstream=upstream.server_port))
        proc = subprocess.Popen([nginx, "-p", prefix, "-c", str(conf), "-g", "daemon off;"])
        try:
            wait_for_port(port)
            threads = [
                threading.Thread(target=drive, args=(port, requests // THREADS + (i < requests % THREADS), i))
                for i in range(THREADS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            proc.terminate()  # nginx flushes and closes its log on exit
            proc.wait(10)
            upstream.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
