"""Helpers for the integration tests: paths of the build, certificates, free
loopback ports, and an NGINX instance with a generated configuration."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BUILD = os.path.join(ROOT, "build")
NGINX = os.path.join(BUILD, "sbin", "nginx")
OPENSSL = os.path.join(BUILD, "bin", "openssl")
SITE = os.path.join(ROOT, "nginx-module", "default", "html")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory, name="server"):
    """A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1,
    made with the built OpenSSL CLI.  Returns (cert_path, key_path)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "30",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def work_dir(prefix):
    """A fresh directory under build/tests that unprivileged NGINX workers
    can read (pytest's own tmp_path is private to root)."""
    base = os.path.join(BUILD, "tests", "run")
    os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix + "-", dir=base)
    os.chmod(path, 0o755)
    return path


CONF_TEMPLATE = """\
worker_processes {workers};
error_log {prefix}/logs/error.log notice;
pid {prefix}/logs/nginx.pid;
{main_extra}
events {{
    worker_connections 1024;
}}

http {{
    access_log {prefix}/logs/access.log;
    default_type application/octet-stream;
{http_extra}
    server {{
        listen 127.0.0.1:{port} ssl;
        http2 on;
        server_name localhost;

        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;

        root {prefix}/html;
{server_extra}
    }}
}}
"""


class Nginx:
    """One NGINX master with a generated configuration in its own prefix."""

    def __init__(self, cert, key, workers=1, main_extra="", http_extra="",
                 server_extra="", name="nginx"):
        self.prefix = work_dir(name)
        self.port = free_port()
        self.proc = None
        os.makedirs(os.path.join(self.prefix, "logs"))
        shutil.copytree(SITE, os.path.join(self.prefix, "html"))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(CONF_TEMPLATE.format(
                workers=workers, prefix=self.prefix, port=self.port,
                cert=cert, key=key, main_extra=main_extra,
                http_extra=http_extra, server_extra=server_extra))

    def cmd(self, *args):
        return [NGINX, "-p", self.prefix + "/", "-c", self.conf,
                "-e", os.path.join(self.prefix, "logs", "error.log"), *args]

    def test_config(self):
        """`nginx -t`: the CompletedProcess (its messages are on stderr)."""
        return subprocess.run(self.cmd("-t"), capture_output=True, text=True)

    def start(self, timeout=10):
        self.proc = subprocess.Popen(self.cmd("-g", "daemon off;"),
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.proc.stderr.read()
                                   + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen on port %d" % self.port)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)        # graceful shutdown
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, "logs", "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def url(self, path="/"):
        return "https://localhost:%d%s" % (self.port, path)
