"""An access log written by a real Apache httpd under load: ``python apache_access.py OUT REQUESTS``.

Starts Debian's apache2 on a free loopback port with the ``combined`` LogFormat plus ``%D`` (the
request's duration in microseconds, the usual latency addition on Apache), serving static files,
404s for missing ones and 503s for ``/api/orders/...``, and sends it REQUESTS requests over keep-alive
connections from a few threads. Apache writes ``-`` for an empty body where nginx writes 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from nginx_access import drive, free_port, wait_for_port  # the same load, from the same clients

MODULES = "/usr/lib/apache2/modules"
CONF = """
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule alias_module {modules}/mod_alias.so
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {prefix}/apache.pid
Mutex file:{prefix} default
DefaultRuntimeDir {prefix}
ErrorLog {prefix}/error.log
{user}
DocumentRoot {prefix}/www
<Directory {prefix}/www>
  Require all granted
</Directory>
KeepAlive On
MaxKeepAliveRequests 0
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\" %D" combined_duration
CustomLog {out} combined_duration
RedirectMatch 503 ^/api/orders/
"""


def main(out: str, requests: int) -> None:
    apache = shutil.which("apache2") or "/usr/sbin/apache2"
    Path(out).unlink(missing_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="upkeep-apache-") as prefix:
        os.chmod(prefix, 0o755)  # its workers run as www-data when started as root
        www = Path(prefix) / "www"
        for name in ("api/chat", "api/search"):
            (www / name).parent.mkdir(parents=True, exist_ok=True)
            (www / name).write_text("{}")
        (www / "api" / "users").mkdir()
        for i in range(1, 5001, 7):  # every 7th user exists; the others are 404s
            (www / "api" / "users" / str(i)).write_text("{}")
        user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
        conf = Path(prefix) / "apache2.conf"
        conf.write_text(CONF.format(modules=MODULES, port=port, prefix=prefix, out=Path(out).resolve(), user=user))
        proc = subprocess.Popen([apache, "-f", str(conf), "-DFOREGROUND"])
        try:
            wait_for_port(port)
            threads = [
                threading.Thread(target=drive, args=(port, requests // 4 + (i < requests % 4), i)) for i in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            proc.terminate()  # a graceful stop: Apache flushes and closes its log
            proc.wait(15)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
