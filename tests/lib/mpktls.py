"""Helpers for the integration tests: paths of the build, certificates, free
loopback ports, and an NGINX instance with a generated configuration (with
or without the keystore), its processes, signals and keystore_status."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BUILD = os.path.join(ROOT, "build")
NGINX = os.path.join(BUILD, "sbin", "nginx")
OPENSSL = os.path.join(BUILD, "bin", "openssl")
SITE = os.path.join(ROOT, "nginx-module", "default", "html")


_GIVEN_PORTS = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, and not given
    out before by this process: the kernel may hand the same ephemeral
    port to two binds in a row, and two servers of one configuration on
    one port become virtual hosts of each other (a TLS 1.3-only cell then
    answered a TLS 1.2 client with protocol_version)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


KEY_TYPES = {"ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
             "rsa": ["-newkey", "rsa:2048"]}


def make_cert(directory, name="server", key_type="ec"):
    """A self-signed certificate for localhost and 127.0.0.1 (ECDSA P-256,
    or key_type="rsa": RSA 2048), made with the built OpenSSL CLI.
    Returns (cert_path, key_path)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(
        [OPENSSL, "req", "-x509", *KEY_TYPES[key_type], "-nodes",
         "-keyout", key, "-out", cert, "-days", "30",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def system_library(name):
    """The x86-64 library `name` as the dynamic loader finds it."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"^\s*" + re.escape(name) + r" \([^)]*x86-64[^)]*\) => (\S+)",
                  out, re.M)
    assert m, name + " not found by ldconfig"
    return os.path.realpath(m.group(1))


def work_dir(prefix):
    """A fresh directory under build/tests that unprivileged NGINX workers
    can read (pytest's own tmp_path is private to root)."""
    base = os.path.join(BUILD, "tests", "run")
    os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix + "-", dir=base)
    os.chmod(path, 0o755)
    return path


def key_ref(key, keystore):
    """How ssl_certificate_key names a key: with keystore on, a
    "keystore:" URI with the absolute path (the keystore reads the file,
    NGINX never does); otherwise the file itself."""
    return "keystore:" + os.path.abspath(key) if keystore else key


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
        listen 127.0.0.1:{port} ssl{listen_options};
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


STATUS_SERVER = """
    server {{
        listen 127.0.0.1:{status_port};
        location = /ks {{ keystore_status; }}
    }}
"""

# what the server negotiated, and which worker served the request
INFO_LOCATION = (
    '        location = /info {\n'
    '            return 200 "$ssl_protocol $ssl_cipher $ssl_curve '
    '$ssl_session_reused $pid\\n";\n'
    '        }\n')


class Nginx:
    """One NGINX master with a generated configuration in its own prefix.

    keystore: None (no "keystore" directive), True ("keystore on;" in the
    http block, the key named with key_ref()) or False ("keystore off;",
    the key file as it is).  certs: more (cert, key) pairs for the same
    server.  status: a plain-HTTP server on status_port with "location =
    /ks { keystore_status; }" (reading it costs no TLS and changes
    nothing but the one crossing of ks_stats()).  info: "location = /info"
    in the TLS server answers "PROTOCOL CIPHER CURVE REUSED PID".
    listen_options: more parameters of the TLS server's "listen"
    (" reuseport", " backlog=4096").  env: the master's environment (None:
    this process's)."""

    def __init__(self, cert, key, workers=1, main_extra="", http_extra="",
                 server_extra="", name="nginx", keystore=None, certs=(),
                 status=False, info=False, listen_options="", env=None):
        self.prefix = work_dir(name)
        self.env = env
        self.port = free_port()
        self.status_port = free_port() if status else None
        self.keystore = keystore
        self.proc = None
        self.daemon = False
        self._master = None
        os.makedirs(os.path.join(self.prefix, "logs"))
        shutil.copytree(SITE, os.path.join(self.prefix, "html"))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        if keystore is not None:
            http_extra = ("    keystore %s;\n" % ("on" if keystore else "off")
                          + http_extra)
        if status:
            http_extra += STATUS_SERVER.format(status_port=self.status_port)
        for c, k in certs:
            server_extra = ("        ssl_certificate %s;\n"
                            "        ssl_certificate_key %s;\n"
                            % (c, key_ref(k, keystore)) + server_extra)
        if info:
            server_extra += INFO_LOCATION
        self.write_conf(CONF_TEMPLATE.format(
            workers=workers, prefix=self.prefix, port=self.port,
            cert=cert, key=key_ref(key, keystore), main_extra=main_extra,
            http_extra=http_extra, server_extra=server_extra,
            listen_options=listen_options))

    def write_conf(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def read_conf(self):
        with open(self.conf) as f:
            return f.read()

    def cmd(self, *args):
        return [NGINX, "-p", self.prefix + "/", "-c", self.conf,
                "-e", os.path.join(self.prefix, "logs", "error.log"), *args]

    def test_config(self):
        """`nginx -t`: the CompletedProcess (its messages are on stderr)."""
        return subprocess.run(self.cmd("-t"), capture_output=True, text=True)

    def start(self, timeout=10, daemon=False):
        """Start the master and wait until the port accepts connections.
        daemon=False: a child of this process (-g "daemon off;");
        daemon=True: as NGINX runs in production (it forks, the master is
        found through the pid file); binary upgrades need this."""
        self.daemon = daemon
        if daemon:
            r = subprocess.run(self.cmd(), capture_output=True, text=True,
                               timeout=timeout, env=self.env)
            if r.returncode != 0:
                raise RuntimeError("nginx exited %d: %s%s" % (
                    r.returncode, r.stderr, self.error_log()))
            self._master = self.read_pid(timeout)
        else:
            self.proc = subprocess.Popen(self.cmd("-g", "daemon off;"),
                                         env=self.env,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            self._master = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError("nginx exited: " + (
                    self.proc.stderr.read() if self.proc else "")
                    + self.error_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen on port %d" % self.port)

    @property
    def pid_file(self):
        return os.path.join(self.prefix, "logs", "nginx.pid")

    def read_pid(self, timeout=10, path=None):
        """The pid in the pid file (path: another one, e.g. .oldbin),
        waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(path or self.pid_file) as f:
                    return int(f.read())
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def master_pid(self):
        return self._master

    def running(self):
        if self.proc is not None and not self.daemon:
            return self.proc.poll() is None
        return self._master is not None and alive(self._master)

    def signal(self, sig):
        os.kill(self._master, sig)

    def signal_cmd(self, name, timeout=60):
        """`nginx -s NAME` (reload, reopen, quit, stop): the signaller
        process parses the configuration too."""
        return subprocess.run(self.cmd("-s", name), capture_output=True,
                              text=True, timeout=timeout)

    def workers(self, master=None):
        """The pids of the worker processes of the master (or another)."""
        return children(master or self._master, "nginx: worker process")

    def wait_workers(self, count, exclude=(), timeout=60, master=None):
        """Wait until the master has exactly count workers and none is in
        exclude; returns their pids."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.workers(master)
            if len(pids) == count and not set(pids) & set(exclude):
                return pids
            if time.monotonic() > deadline or \
                    "cannot be respawned" in self.error_log():
                raise RuntimeError("workers %s, wanted %d not in %s\n%s"
                                   % (pids, count, sorted(exclude),
                                      self.error_log()[-3000:]))
            time.sleep(0.05)

    def status(self, timeout=60):
        """The keystore_status page of the worker that answered, as a dict
        (numbers as int)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/ks"
                                    % self.status_port,
                                    timeout=timeout) as r:
            return parse_status(r.read().decode())

    def stop(self, timeout=30):
        if self.daemon:
            if self._master is not None and alive(self._master):
                os.kill(self._master, signal.SIGQUIT)
                if not wait_gone(self._master, timeout):
                    os.kill(self._master, signal.SIGKILL)
                    wait_gone(self._master, 10)
            return
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)        # graceful shutdown
        try:
            self.proc.wait(timeout)
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


def parse_status(text):
    """keystore_status's "key: value" lines as a dict (ints where they
    are numbers)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return out


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def children(ppid, title):
    """Live processes whose parent is ppid and whose command line is title
    (a worker that is shutting down has another)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(
                    errors="replace").strip()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z" \
                and cmdline == title:
            pids.append(int(d))
    return sorted(pids)
