"""TLS clients for the interop tests against `s_server -www`: Python's ssl
module, build/bin/openssl s_client, curl and gnutls-cli.  Each one can
log its secrets (NSS key log) and returns what it saw.

The s_server -www page tells what the server negotiated: the line
"New, TLSv1.3, Cipher is X" or "Reused, ...".  page_sessions() reads
those lines.
"""

import re
import socket
import ssl
import subprocess

import captured
import mpktls
import sserver

GET = "GET / HTTP/1.0\r\n\r\n"
TIMEOUT = 120


def page_sessions(text):
    """[(reused, protocol, cipher)] for each status page in text."""
    return [(m.group(1) == "Reused", m.group(2), m.group(3))
            for m in re.finditer(
                r"^(New|Reused), (\S+), Cipher is (\S+)$", text, re.M)]


class Result:
    """What one client run gave: returncode, output (stdout and stderr as
    text) and the sessions of the status pages in it."""

    def __init__(self, returncode, output):
        self.returncode = returncode
        self.output = output
        self.sessions = page_sessions(output)

    def __repr__(self):
        return "Result(%r, %r)" % (self.returncode, self.sessions)


def _run(argv, stdin=GET, env=None):
    p = subprocess.run(argv, input=stdin.encode(), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=TIMEOUT)
    return Result(p.returncode, p.stdout.decode(errors="replace"))


# ---- Python's ssl ------------------------------------------------------

def read_all(tls):
    """What an ssl socket receives until the peer closes (close_notify or
    not)."""
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    return data


class PythonClient:
    """One SSLContext (sessions can be reused only with the same one)."""

    def __init__(self, cafile, keylog=None, version="TLSv1.3", suite=None):
        """suite: a TLS 1.2 cipher (Python's ssl cannot choose the TLS 1.3
        suites: the server does)."""
        self.ctx = ssl.create_default_context(cafile=cafile)
        v = getattr(ssl.TLSVersion, version.replace(".", "_"))
        self.ctx.minimum_version = self.ctx.maximum_version = v
        if keylog:
            self.ctx.keylog_filename = keylog
        if suite and version != "TLSv1.3":
            self.ctx.set_ciphers(suite)
        self.session = None

    def get(self, port, resume=False, request=GET):
        """One GET (or another request); the session is kept for a later
        get(resume=True)."""
        with socket.create_connection(("127.0.0.1", port), TIMEOUT) as raw:
            with self.ctx.wrap_socket(
                    raw, server_hostname="localhost",
                    session=self.session if resume else None) as tls:
                tls.sendall(request.encode())
                data = read_all(tls)
                self.session = tls.session
                r = Result(0, data.decode(errors="replace"))
                r.session_reused = tls.session_reused
                r.cipher = tls.cipher()[0]
                return r

    def connect(self, port):
        """An open TLS socket (for the interactive server)."""
        raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        return self.ctx.wrap_socket(raw, server_hostname="localhost")


# ---- openssl s_client ---------------------------------------------------

def s_client_argv(port, cafile, keylog=None, suite=None, groups=None,
                  sess_out=None, sess_in=None, version="TLSv1.3", extra=()):
    a = [mpktls.OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
         "-servername", "localhost", "-CAfile", cafile,
         "-verify_return_error", sserver.VERSION_FLAGS[version]]
    if keylog:
        a += ["-keylogfile", keylog]
    if suite:
        a += ["-ciphersuites" if version == "TLSv1.3" else "-cipher", suite]
    if groups:
        a += ["-groups", groups]
    if sess_out:
        a += ["-sess_out", sess_out]
    if sess_in:
        a += ["-sess_in", sess_in]
    return a + list(extra)


def s_client_get(port, cafile, **kwargs):
    """One GET; -ign_eof reads the page until the server closes.  -brief:
    s_client's own session print-out would look like a page's line; its
    short form names the protocol, suite and group."""
    return _run(s_client_argv(port, cafile, extra=["-ign_eof", "-brief"],
                              **kwargs), env=sserver.client_env())


class Interactive(captured.Captured):
    """A client process that stays connected: what is written to its stdin
    is sent, what it receives is collected (s_client, gnutls-cli)."""

    def __init__(self, argv, env):
        # stdbuf: -msg output and the like go through stdio
        super().__init__(subprocess.Popen(["stdbuf", "-oL"] + argv, env=env,
                                          stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT))

    def wait_output(self, needle, timeout=60, since=0, count=1):
        return super().wait_output(needle, timeout, since, True, count)

    def close(self, timeout=30):
        """Close stdin and wait for the end; returns the returncode."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.join()
        return self.proc.returncode


def s_client_interactive(port, cafile, **kwargs):
    """s_client in its basic command mode: a line "k" or "K" sends a
    KeyUpdate (K: update requested); -msg shows the handshake messages."""
    return Interactive(s_client_argv(port, cafile, extra=["-msg"],
                                     **kwargs), sserver.client_env())


# ---- curl ---------------------------------------------------------------

CURL_VERSIONS = {"TLSv1.3": ["--tlsv1.3", "--tls-max", "1.3"],
                 "TLSv1.2": ["--tlsv1.2", "--tls-max", "1.2"]}


def curl_get(port, cafile, count=1, keylog=None, version="TLSv1.3",
             extra=()):
    """count GETs in one curl run (the later ones resume the session)."""
    url = "https://localhost:%d/" % port
    env = sserver.client_env(**({"SSLKEYLOGFILE": keylog} if keylog
                                else {}))
    return _run(["curl", "-sS", *CURL_VERSIONS[version], "--cacert", cafile,
                 "--resolve", "localhost:%d:127.0.0.1" % port, *extra]
                + [url] * count, stdin="", env=env)


# ---- gnutls-cli --------------------------------------------------------

def gnutls_priority(version="TLSv1.3", groups=None):
    """A priority string for one protocol version; groups: only these
    (key shares for the first ones), else all GnuTLS has."""
    p = "NORMAL:-VERS-ALL:+VERS-%s" % version.replace("v", "").upper()
    if groups:
        return p + ":-GROUP-ALL" + "".join(
            ":+" + GNUTLS_GROUP_NAMES[g] for g in groups)
    return p + ":+GROUP-ALL"


def gnutls_argv(port, cafile, priority=None, resume=False, extra=()):
    a = ["gnutls-cli", "--x509cafile", cafile, "--port", str(port)]
    if priority:
        a += ["--priority", priority]
    if resume:
        a.append("--resume")
    return a + list(extra) + ["localhost"]


def gnutls_env(keylog=None):
    return sserver.client_env(**({"SSLKEYLOGFILE": keylog} if keylog
                                 else {}))


def gnutls_get(port, cafile, keylog=None, priority=None, resume=False):
    """One GET (with resume: a first connection, then a resumed one that
    sends the GET)."""
    return _run(gnutls_argv(port, cafile, priority, resume),
                env=gnutls_env(keylog))


def gnutls_interactive(port, cafile, keylog=None, priority=None):
    return Interactive(gnutls_argv(port, cafile, priority),
                       gnutls_env(keylog))


# ---- what the clients' libraries can do --------------------------------

GNUTLS_GROUP_NAMES = {"X25519MLKEM768": "GROUP-X25519-MLKEM768",
                      "SecP256r1MLKEM768": "GROUP-SECP256R1-MLKEM768",
                      "X25519": "GROUP-X25519", "X448": "GROUP-X448",
                      "secp256r1": "GROUP-SECP256R1",
                      "secp384r1": "GROUP-SECP384R1",
                      "secp521r1": "GROUP-SECP521R1",
                      "ffdhe2048": "GROUP-FFDHE2048"}
# groups an OpenSSL before 3.5 (Python's ssl, curl here) does not have
OPENSSL_35_GROUPS = ("X25519MLKEM768", "SecP256r1MLKEM768")

_cache = {}


def _library(client):
    """(name, version tuple or None, gnutls group list or None)."""
    if client not in _cache:
        if client == "python":
            _cache[client] = ("Python's ssl (%s)" % ssl.OPENSSL_VERSION,
                              ssl.OPENSSL_VERSION_INFO[:2], None)
        elif client == "curl":
            out = subprocess.run(["curl", "--version"], capture_output=True,
                                 text=True).stdout
            m = re.search(r"OpenSSL/(\d+)\.(\d+)\S*", out)
            _cache[client] = ("curl's " + (m.group(0) if m else "TLS"),
                              (int(m.group(1)), int(m.group(2))) if m
                              else (0, 0), None)
        elif client == "gnutls":
            out = subprocess.run(["gnutls-cli", "--list"],
                                 capture_output=True, text=True).stdout
            m = re.search(r"^Groups: (.*)$", out, re.M)
            ver = subprocess.run(["gnutls-cli", "--version"],
                                 capture_output=True, text=True).stdout
            _cache[client] = (ver.splitlines()[0] if ver else "gnutls-cli",
                              None, m.group(1).split(", ") if m else [])
        else:
            _cache[client] = ("build/bin/openssl", None, None)
    return _cache[client]


def client_lacks(client, group):
    """Why the named client cannot offer group, or None if it can."""
    name, version, gnutls_groups = _library(client)
    if gnutls_groups is not None:
        if GNUTLS_GROUP_NAMES.get(group) not in gnutls_groups:
            return "%s has no %s" % (name, group)
    elif version is not None and version < (3, 5) \
            and group in OPENSSL_35_GROUPS:
        return "%s has no %s" % (name, group)
    return None
