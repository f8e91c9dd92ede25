"""NGINX with `keystore on` (issue 5's "Done when"), with real clients:
Python's ssl, build/bin/openssl s_client, curl (HTTP/1.1 and HTTP/2) and
gnutls-cli.

- test_handshake: the interop matrix against NGINX with 1 and 2 workers:
  TLS 1.3 with each suite and group, TLS 1.2 with ECDHE-ECDSA and
  ECDHE-RSA and each AEAD cipher.  Each server block takes one cell only.
  One connection asks /ks (keystore_status), /info (what the server
  negotiated, which worker) and /ks again: the gate crossings of the
  serving worker grow between the two pages (its records go through T).
- test_resumption_*: shared session cache and tickets across two workers;
  tickets across a restart and across two NGINX instances with shared
  ssl_session_ticket_key and keystore_seal_key files; what happens with a
  sealing key that differs.
- test_reload_*, test_graceful_quit, test_reopen, test_worker_crash_*,
  test_binary_upgrade: NGINX's lifecycle with keystore on; reloads that
  turn the keystore on, change the sealing key, or fail.
- test_encrypted_key_*, test_proxy_*, test_timer_resolution,
  test_aio_threads: NGINX features next to the keystore (keystore off is
  the control where one is needed).
- test_refused: every configuration that `nginx -t` refuses with keystore
  on, with its message and exit code 1; the same configuration without
  the offending line passes.  test_default_ciphers_and_groups_narrowed:
  where the configuration leaves them to NGINX, keystore on narrows
  them.
- test_status_*, test_t_heap_*, test_no_leak: keystore_status; crossings
  grow with traffic and only with traffic to keystore servers; the T heap
  returns to its baseline (100,000 requests on 1,000 connections).
- test_signals_under_load: 100,000 signals (SIGALRM from timer_resolution
  1ms, SIGUSR1 to the workers and the master, SIGHUP reloads) while wrk
  loads the keystore server: no worker crashes, no request fails.  Its
  control is the build before commit e2387e2 (signals blocked only after
  inspection): workers there died of SIGSEGV in NGINX's SIGALRM handler
  on T's stack, and this test failed.
- test_exposure_*: the key-exposure test against a worker and the master
  after real traffic (TLS 1.3 and 1.2, open connections): no session
  secret, derived key or private key in U with keystore on; the same
  binary and traffic with keystore off shows them (the control).

MPK is needed: on a CPU without pku, test_nginx_keystore_guest.py runs
this file in the QEMU guest (one boot) and reports each case.
"""

import asyncio
import functools
import hashlib
import hmac
import itertools
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback

import pytest

import guest_suite

guest_suite.skip_without_mpk("test_nginx_keystore_guest.py")

import keyscan  # noqa: E402
import mpktls  # noqa: E402
import sserver  # noqa: E402
import tls_clients as tc  # noqa: E402

START = 180             # seconds for NGINX to start (TCG is slow)
TIMEOUT = 120           # for one client run

TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256")
TLS13_GROUPS = ("X25519MLKEM768", "X25519", "P-256", "P-384", "P-521",
                "X448")
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256",
                 "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305",
                 "ECDHE-RSA-AES128-GCM-SHA256",
                 "ECDHE-RSA-AES256-GCM-SHA384",
                 "ECDHE-RSA-CHACHA20-POLY1305")
# $ssl_curve: OpenSSL's short name, or the code point of a group without
# a NID (X25519MLKEM768)
CURVE_NAMES = {"X25519MLKEM768": "0x11ec", "X25519": "X25519",
               "P-256": "prime256v1", "P-384": "secp384r1",
               "P-521": "secp521r1", "X448": "X448"}
# tls_clients.client_lacks() knows the groups by these names
CLIENT_GROUPS = {"P-256": "secp256r1", "P-384": "secp384r1",
                 "P-521": "secp521r1"}

CELLS = ([("TLSv1.3", s, g) for s in TLS13_SUITES for g in TLS13_GROUPS]
         + [("TLSv1.2", c, None) for c in TLS12_CIPHERS])
# for the slow clients: every suite, group and TLS 1.2 cipher once
DIAGONAL = ([("TLSv1.3", TLS13_SUITES[i % 3], g)
             for i, g in enumerate(TLS13_GROUPS)]
            + [("TLSv1.2", c, None) for c in TLS12_CIPHERS])
CURL_H1 = [("TLSv1.3", TLS13_SUITES[0], "X25519"),
           ("TLSv1.2", TLS12_CIPHERS[3], None)]


def cell_id(cell):
    return "-".join(x for x in cell if x)


def handshake_params():
    out = []
    for workers in (1, 2):
        runs = ([(c, cell) for cell in CELLS for c in ("python", "s_client")]
                + [(c, cell) for cell in DIAGONAL
                   for c in ("curl-h2", "gnutls")]
                + [("curl-h1", cell) for cell in CURL_H1])
        out += [pytest.param(workers, client, cell,
                             id="w%d-%s-%s" % (workers, client, cell_id(cell)))
                for client, cell in runs]
    return out


# ---- configurations ------------------------------------------------------

STATUS_LOCATIONS = mpktls.INFO_LOCATION + \
    "        location = /ks { keystore_status; }\n"

CELL_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        http2 on;
        server_name localhost;
        ssl_certificate {ec_cert};
        ssl_certificate_key {ec_key};
        ssl_certificate {rsa_cert};
        ssl_certificate_key {rsa_key};
{ssl}
{locations}
    }}
"""


def cell_ssl(cell):
    version, suite, group = cell
    if version == "TLSv1.3":
        return ("        ssl_protocols TLSv1.3;\n"
                "        ssl_conf_command Ciphersuites %s;\n"
                "        ssl_ecdh_curve %s;" % (suite, group))
    return ("        ssl_protocols TLSv1.2;\n"
            "        ssl_ciphers %s;" % suite)


def cell_servers(cells, cert, rsa, keystore=True):
    """http{} text with one TLS server per cell; returns (text, ports)."""
    ports, text = {}, ""
    for cell in cells:
        ports[cell] = mpktls.free_port()
        text += CELL_SERVER.format(
            port=ports[cell], ec_cert=cert[0],
            ec_key=mpktls.key_ref(cert[1], keystore), rsa_cert=rsa[0],
            rsa_key=mpktls.key_ref(rsa[1], keystore), ssl=cell_ssl(cell),
            locations=STATUS_LOCATIONS)
    return text, ports


def secret_file(directory, name, data, mode=0o600):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


@pytest.fixture(scope="module")
def work():
    return mpktls.work_dir("nginx-keystore")


@pytest.fixture(scope="module")
def rsa(work):
    """(cert, key) of a self-signed RSA 2048 certificate (the ECDHE-RSA
    suites); the ECDSA P-256 one is conftest's cert."""
    return mpktls.make_cert(work, "rsa", "rsa")


@pytest.fixture(scope="module")
def cafile(cert, rsa, work):
    """Both certificates: the clients trust whichever the server sends."""
    path = os.path.join(work, "ca.pem")
    with open(path, "w") as out:
        for c in (cert[0], rsa[0]):
            with open(c) as f:
                out.write(f.read())
    return path


@pytest.fixture
def ks_nginx(nginx_factory, rsa):
    """conftest's nginx_factory with keystore on (by default), both
    certificates, the status server and /info."""
    def make(**kwargs):
        kwargs.setdefault("keystore", True)
        kwargs.setdefault("status", True)
        kwargs.setdefault("info", True)
        kwargs.setdefault("certs", [rsa])
        return nginx_factory(**kwargs)

    return make


# ---- clients: three requests on one connection ---------------------------

def http11(path, close=False):
    return ("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n"
            % (path, "Connection: close\r\n" if close else "")).encode()


THREE = http11("/ks") + http11("/info") + http11("/ks", close=True)

KS_PAGE = re.compile(r"^pid: (\d+)\nkeystore: (\w+)\n(?:pkey: (\d+)\n"
                     r"gate_crossings: (\d+)\n)?", re.M)
INFO = re.compile(r"^(TLSv1\.[23]) (\S+) (\S+) ([r.]) (\d+)$", re.M)


def pages(text):
    """The keystore_status pages and /info lines in a client's output:
    ([{pid, keystore, pkey, crossings}], [(protocol, cipher, curve,
    reused, pid)])."""
    ks = [{"pid": int(m.group(1)), "keystore": m.group(2),
           "pkey": m.group(3) and int(m.group(3)),
           "crossings": m.group(4) and int(m.group(4))}
          for m in KS_PAGE.finditer(text)]
    return ks, INFO.findall(text)


def tls_context(cafile, version, ciphers=None, keylog=None):
    ctx = ssl.create_default_context(cafile=cafile)
    v = getattr(ssl.TLSVersion, version.replace(".", "_"))
    ctx.minimum_version = ctx.maximum_version = v
    if ciphers:
        ctx.set_ciphers(ciphers)
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def python_three(port, cafile, version):
    ctx = tls_context(cafile, version)
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(THREE)
            return tc.read_all(tls).decode(errors="replace")


def s_client_three(port, cafile, version):
    argv = tc.s_client_argv(port, cafile, version=version,
                            extra=["-ign_eof", "-quiet"])
    p = subprocess.run(argv, input=THREE, capture_output=True,
                       timeout=TIMEOUT, env=sserver.client_env())
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return p.stdout.decode(errors="replace")


def curl_three(port, cafile, version, http2):
    urls = ["https://localhost:%d%s" % (port, p)
            for p in ("/ks", "/info", "/ks")]
    p = subprocess.run(
        ["curl", "-sS", "--http2" if http2 else "--http1.1",
         *tc.CURL_VERSIONS[version], "--cacert", cafile,
         "--resolve", "localhost:%d:127.0.0.1" % port,
         "-w", "## %{http_version} %{num_connects}\n", *urls],
        capture_output=True, timeout=TIMEOUT, env=sserver.client_env())
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, p.stderr.decode(errors="replace") + out
    # one connection for the three transfers, in the HTTP version asked
    assert re.findall(r"^## (\S+) (\d+)$", out, re.M) == [
        ("2" if http2 else "1.1", n) for n in ("1", "0", "0")], out
    return out


def gnutls_three(port, cafile, version):
    """gnutls-cli ends when its stdin does, maybe before the answers: the
    requests are written once the handshake is done, and stdin closed
    only after the server closed the connection."""
    c = tc.Interactive(tc.gnutls_argv(port, cafile,
                                      tc.gnutls_priority(version)),
                       tc.gnutls_env())
    try:
        assert c.wait_output(b"- Handshake was completed", TIMEOUT), \
            c.output()[-3000:]
        c.send(THREE.decode())
        c.proc.wait(TIMEOUT)
    finally:
        c.close()
    return c.output()


def three(client, port, cafile, version):
    if client == "python":
        return python_three(port, cafile, version)
    if client == "s_client":
        return s_client_three(port, cafile, version)
    if client.startswith("curl"):
        return curl_three(port, cafile, version, client == "curl-h2")
    return gnutls_three(port, cafile, version)


def assert_served(out, cell, keystore="on"):
    """The three answers came from one worker with the keystore, the
    server negotiated exactly the cell, and the worker's gate crossings
    grew between the two status pages (this connection's records were
    sealed and opened in T)."""
    version, suite, group = cell
    ks, info = pages(out)
    assert len(ks) == 2 and len(info) == 1, out[-3000:]
    protocol, cipher, curve, reused, pid = info[0]
    assert (protocol, cipher, reused) == (version, suite, "."), info
    if group:
        assert curve == CURVE_NAMES[group], info
    else:
        assert curve in CURVE_NAMES.values(), info
    assert ks[0]["pid"] == ks[1]["pid"] == int(pid), (ks, info)
    assert ks[0]["keystore"] == keystore, ks
    if keystore == "on":
        return ks[1]["crossings"] - ks[0]["crossings"]
    return None


@pytest.fixture(scope="module")
def matrix(cert, rsa):
    """matrix(workers): NGINX (keystore on) with one server per cell of
    CELLS, started on first use; (nginx, {cell: port})."""
    made = {}

    def get(workers):
        if workers not in made:
            text, ports = cell_servers(CELLS, cert, rsa)
            n = mpktls.Nginx(cert[0], cert[1], workers=workers,
                             keystore=True, status=True, http_extra=text,
                             name="matrix-w%d" % workers)
            made[workers] = (n.start(timeout=START), ports)
            n.wait_workers(workers, timeout=START)
        return made[workers]

    yield get
    for n, _ in made.values():
        n.stop()


@pytest.mark.parametrize("workers,client,cell", handshake_params())
def test_handshake(matrix, cafile, workers, client, cell):
    version, suite, group = cell
    why = group and tc.client_lacks(client.split("-")[0],
                                    CLIENT_GROUPS.get(group, group))
    if why:
        pytest.skip(why)
    n, ports = matrix(workers)
    out = three(client, ports[cell], cafile, version)
    grew = assert_served(out, cell)
    # the /ks answer, then /info, were sealed in T; so was the request
    # record if it came apart from the first one; the second page's own
    # ks_stats() is one crossing
    assert grew >= 2, out[-3000:]


# ---- resumption ------------------------------------------------------------

class Resumer(tc.PythonClient):
    """Python's ssl client that keeps the last session: each get() offers
    it (resume=True) and keeps the newest."""

    def __init__(self, cafile, version):
        super().__init__(cafile, version=version)

    def get(self, port, resume=True):
        """(info tuple, session_reused) of one GET /info."""
        r = super().get(port, resume, http11("/info", close=True).decode())
        info = INFO.findall(r.output)
        assert len(info) == 1, r.output
        return info[0], r.session_reused


RESUMPTION = {
    "cache": "    ssl_session_cache shared:SSL:1m;\n"
             "    ssl_session_tickets off;\n",
    "tickets": "    ssl_session_tickets on;\n",
}


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
@pytest.mark.parametrize("how", list(RESUMPTION))
def test_resumption_across_workers(ks_nginx, cafile, how, version):
    """Two workers, connections spread over them (reuseport): after one
    full handshake, every reconnection resumes, on both workers."""
    n = ks_nginx(workers=2, http_extra=RESUMPTION[how],
                 listen_options=" reuseport").start(timeout=START)
    workers = n.wait_workers(2, timeout=START)
    c = Resumer(cafile, version)
    first, reused = c.get(n.port, resume=False)
    assert first[0] == version and first[3] == "." and not reused
    resumed_on = set()
    for _ in range(40):
        info, reused = c.get(n.port)
        assert reused and info[3] == "r", (info, resumed_on)
        resumed_on.add(int(info[4]))
        if resumed_on == set(workers):
            break
    assert resumed_on == set(workers)


def shared_files(ticket_key_len):
    d = mpktls.work_dir("shared-keys")
    return (secret_file(d, "seal.key", os.urandom(32)),
            secret_file(d, "ticket.key", os.urandom(ticket_key_len)))


def files_conf(seal, ticket):
    return ("    keystore_seal_key %s;\n" % seal
            + ("    ssl_session_ticket_key %s;\n" % ticket if ticket else ""))


TICKET_CASES = [pytest.param("TLSv1.3", 80, id="TLSv1.3-80"),
                pytest.param("TLSv1.2", 48, id="TLSv1.2-48")]


@pytest.mark.parametrize("version,ticket_key_len", TICKET_CASES)
def test_resumption_across_restart(ks_nginx, cafile, version,
                                   ticket_key_len):
    """keystore_seal_key and ssl_session_ticket_key files: a ticket from
    before a restart (stop, start) resumes after it."""
    seal, ticket = shared_files(ticket_key_len)
    n = ks_nginx(workers=2, http_extra=files_conf(seal, ticket))
    n.start(timeout=START)
    c = Resumer(cafile, version)
    before, _ = c.get(n.port, resume=False)
    n.stop()
    n.start(timeout=START)
    info, reused = c.get(n.port)
    assert reused and info[3] == "r", info
    assert int(info[4]) != int(before[4])


@pytest.mark.parametrize("version,ticket_key_len", TICKET_CASES)
def test_resumption_restart_without_ticket_key(ks_nginx, cafile, version,
                                               ticket_key_len):
    """The control of the restart test: with keystore_seal_key only, the
    ticket keys are random per start, and the old ticket is declined: a
    full handshake, which succeeds."""
    seal, _ = shared_files(ticket_key_len)
    n = ks_nginx(workers=1, http_extra=files_conf(seal, None))
    n.start(timeout=START)
    c = Resumer(cafile, version)
    c.get(n.port, resume=False)
    n.stop()
    n.start(timeout=START)
    info, reused = c.get(n.port)
    assert not reused and info[3] == ".", info


@pytest.mark.parametrize("version,ticket_key_len", TICKET_CASES)
def test_resumption_two_instances(ks_nginx, cafile, version,
                                  ticket_key_len):
    """Two NGINX masters on two ports sharing the ticket key and sealing
    key files: a ticket from A resumes on B (issue 4's "across two server
    processes")."""
    seal, ticket = shared_files(ticket_key_len)
    a = ks_nginx(http_extra=files_conf(seal, ticket)).start(timeout=START)
    b = ks_nginx(http_extra=files_conf(seal, ticket)).start(timeout=START)
    c = Resumer(cafile, version)
    first, _ = c.get(a.port, resume=False)
    info, reused = c.get(b.port)
    assert reused and info[3] == "r", info
    assert b.workers() == [int(info[4])] and int(first[4]) in a.workers()


# What a ticket sealed under another sealing key does.  The ticket key is
# the same, so B decrypts the ticket; the session's secret in it is a
# token of A's sealing key, which B's keystore unseals (tokens carry no
# authentication) into unrelated bytes.  TLS 1.3: the PSK binder does not
# verify, B ends the handshake (decrypt_error alert).  TLS 1.2: B resumes
# with a wrong master secret: the client cannot decrypt B's Finished (bad
# record MAC) and ends the handshake.  No fallback to a full handshake in
# either: the client sees a failed connection.
FOREIGN_SEAL_KEY = {
    "TLSv1.3": "[SSL: TLSV1_ALERT_DECRYPT_ERROR]",
    "TLSv1.2": "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC]",
}


@pytest.mark.parametrize("version,ticket_key_len", TICKET_CASES)
def test_resumption_other_seal_key(ks_nginx, cafile, version,
                                   ticket_key_len):
    """The control of the two-instance test: B shares the ticket key file
    but has its own sealing key file.  It cannot unseal A's session
    secret: the handshake fails (see FOREIGN_SEAL_KEY); the next full
    handshake with B works."""
    seal, ticket = shared_files(ticket_key_len)
    other, _ = shared_files(ticket_key_len)
    a = ks_nginx(http_extra=files_conf(seal, ticket)).start(timeout=START)
    b = ks_nginx(http_extra=files_conf(other, ticket)).start(timeout=START)
    c = Resumer(cafile, version)
    c.get(a.port, resume=False)
    with pytest.raises(ssl.SSLError) as e:
        c.get(b.port)
    print("B with A's ticket:", repr(e.value))
    assert FOREIGN_SEAL_KEY[version] in str(e.value), \
        repr(e.value) + b.error_log()[-2000:]
    info, reused = c.get(b.port, resume=False)
    assert not reused and info[3] == "."


# ---- lifecycle -------------------------------------------------------------

def get_info(port, cafile, version="TLSv1.3"):
    """One GET /info on a new connection: the info tuple."""
    ctx = tls_context(cafile, version)
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(http11("/info", close=True))
            data = tc.read_all(tls).decode(errors="replace")
    info = INFO.findall(data)
    assert len(info) == 1, data
    return info[0]


class ClientLoop:
    """A thread that does sequential GETs, each on a new connection, until
    stopped: the pid of every answer, and every error."""

    def __init__(self, port, cafile):
        self.port, self.cafile = port, cafile
        self.pids, self.errors = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.pids.append(int(get_info(self.port, self.cafile)[4]))
            except Exception as e:      # every failure counts
                self.errors.append("%d: %r" % (len(self.pids), e))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(TIMEOUT)

    def wait_served_by(self, pids, timeout=TIMEOUT):
        """Wait until a request is answered by one of pids."""
        deadline = time.monotonic() + timeout
        start = len(self.pids)
        while not set(self.pids[start:]) & set(pids):
            assert time.monotonic() < deadline, \
                "no answer from %s: %s" % (sorted(pids), self.pids[start:])
            assert self._thread.is_alive()
            time.sleep(0.05)


def assert_keystore_worker(n, pids):
    """The status page comes from one of pids, with the keystore on, the
    worker inspected and locked down."""
    st = n.status()
    assert st["pid"] in pids, (st, pids)
    assert st["keystore"] == "on" and st["pkey"] > 0, st
    assert st["inspected_pages"] > 0 and st["unsafe_sites"] == 0, st
    assert st["lockdown"] == "on", st
    return st


def test_reload_under_client_loop(ks_nginx, cafile):
    """`nginx -s reload` three times while a client does sequential GETs:
    every request is answered, by each generation of workers."""
    n = ks_nginx(workers=2).start(timeout=START, daemon=True)
    generations = [n.wait_workers(2, timeout=START)]
    loop = ClientLoop(n.port, cafile).start()
    try:
        for _ in range(3):
            loop.wait_served_by(generations[-1])
            r = n.signal_cmd("reload")
            assert r.returncode == 0, r.stderr
            generations.append(n.wait_workers(
                2, exclude=sum(generations, []), timeout=START))
        loop.wait_served_by(generations[-1])
    finally:
        loop.stop()
    print("%d requests, workers by generation: %s"
          % (len(loop.pids), generations))
    assert loop.errors == []
    for g in generations:
        assert set(loop.pids) & set(g), (g, loop.pids)
    assert_keystore_worker(n, generations[-1])


def test_graceful_quit(ks_nginx, cafile):
    """`nginx -s quit` during a slow download: no new connection is
    accepted, the download ends complete, then NGINX exits."""
    n = ks_nginx(server_extra="        location /slow/ { limit_rate 64k; }\n")
    body = os.urandom(256 * 1024)
    os.makedirs(os.path.join(n.prefix, "html", "slow"))
    with open(os.path.join(n.prefix, "html", "slow", "big.bin"), "wb") as f:
        f.write(body)
    n.start(timeout=START)
    ctx = tls_context(cafile, "TLSv1.3")
    raw = socket.create_connection(("127.0.0.1", n.port), TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(http11("/slow/big.bin", close=True))
        data = tls.recv(65536)
        assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
        r = n.signal_cmd("quit")
        assert r.returncode == 0, r.stderr
        master = n.master_pid
        deadline = time.monotonic() + TIMEOUT
        while True:         # the listening sockets close
            try:
                socket.create_connection(("127.0.0.1", n.port), 5).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "still accepting"
            time.sleep(0.1)
        data += tc.read_all(tls)
    head, _, got = data.partition(b"\r\n\r\n")
    assert got == body
    assert mpktls.wait_gone(master, TIMEOUT), n.error_log()[-3000:]
    assert "gracefully shutting down" in n.error_log()


def test_reopen(ks_nginx, cafile):
    """`nginx -s reopen`: the workers log to a new access.log after the
    old one was renamed."""
    n = ks_nginx().start(timeout=START)
    log = os.path.join(n.prefix, "logs", "access.log")
    get_info(n.port, cafile)
    os.rename(log, log + ".1")
    r = n.signal_cmd("reopen")
    assert r.returncode == 0, r.stderr
    for i in range(20):     # the worker reopens after its current event
        ctx = tls_context(cafile, "TLSv1.3")
        with socket.create_connection(("127.0.0.1", n.port), TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(http11("/info?after-reopen-%d" % i, close=True))
                tc.read_all(tls)
        if os.path.exists(log) and "after-reopen-" in open(log).read():
            break
    with open(log) as f:
        new = f.read()
    with open(log + ".1") as f:
        old = f.read()
    assert "after-reopen-" in new, (new, old[-2000:], n.error_log()[-2000:])
    assert "GET /info HTTP/1.1" in old
    # and what follows goes there too
    get_info(n.port, cafile)
    assert open(log).read().count("GET /info") > new.count("GET /info")
    assert_keystore_worker(n, n.workers())


def test_worker_crash_respawn(ks_nginx, cafile):
    """kill -9 of a worker: the master starts a new one, which has its own
    keystore, inspection and lockdown, and serves."""
    n = ks_nginx().start(timeout=START)
    old = n.wait_workers(1, timeout=START)
    assert int(get_info(n.port, cafile)[4]) == old[0]
    os.kill(old[0], signal.SIGKILL)
    new = n.wait_workers(1, exclude=old, timeout=START)
    assert int(get_info(n.port, cafile)[4]) == new[0]
    assert_keystore_worker(n, new)
    assert "worker process %d exited on signal 9" % old[0] in n.error_log()


def test_binary_upgrade(ks_nginx, cafile):
    """USR2 starts a new master (the same binary) with its own workers and
    keystore; QUIT to the old master; a client loop sees no failure, and
    the new workers serve."""
    n = ks_nginx(workers=2).start(timeout=START, daemon=True)
    old_master = n.master_pid
    old_workers = n.wait_workers(2, timeout=START)
    loop = ClientLoop(n.port, cafile).start()
    try:
        loop.wait_served_by(old_workers)
        n.signal(signal.SIGUSR2)
        deadline = time.monotonic() + START
        while n.read_pid() == old_master:
            assert time.monotonic() < deadline, n.error_log()[-3000:]
            time.sleep(0.1)
        new_master = n.read_pid()
        assert n.read_pid(path=n.pid_file + ".oldbin") == old_master
        new_workers = n.wait_workers(2, timeout=START, master=new_master)
        os.kill(old_master, signal.SIGQUIT)
        assert mpktls.wait_gone(old_master, START), n.error_log()[-3000:]
        n._master = new_master
        loop.wait_served_by(new_workers)
    finally:
        loop.stop()
    print("%d requests; old workers %s, new %s"
          % (len(loop.pids), old_workers, new_workers))
    assert loop.errors == []
    assert set(loop.pids) <= set(old_workers) | set(new_workers)
    assert_keystore_worker(n, new_workers)


def test_reload_turns_keystore_on(ks_nginx, cafile, cert):
    """A configuration without the keystore, reloaded with keystore on:
    the master sets the keystore up then, and the new workers serve
    with it."""
    n = ks_nginx(keystore=False).start(timeout=START)
    old = n.wait_workers(1, timeout=START)
    assert n.status()["keystore"] == "off"
    n.write_conf(n.read_conf().replace("keystore off;", "keystore on;")
                 .replace("ssl_certificate_key ",
                          "ssl_certificate_key keystore:"))
    r = n.signal_cmd("reload")
    assert r.returncode == 0, r.stderr
    new = n.wait_workers(1, exclude=old, timeout=START)
    assert int(get_info(n.port, cafile)[4]) == new[0]
    assert_keystore_worker(n, new)


def reload_with_seal_key(n, old, new, broken=False):
    """Replace the sealing key file old by new in n's configuration and
    send SIGHUP to the master (not `nginx -s reload`, whose own parse
    would stop a broken configuration before the master sees it).
    broken: the new configuration also has an unknown directive after
    the http block, so the master's reload fails after the http block's
    postconfiguration."""
    good = n.read_conf()
    n.write_conf(good.replace(old, new)
                 + ("\nunknown_directive_after_http;\n" if broken else ""))
    n.signal(signal.SIGHUP)
    return good


def ticket_issued(ks_nginx, cafile):
    """NGINX (1 worker) with sealing and ticket key files, and a client
    that holds a ticket of it: (nginx, workers, client, the sealing key
    file, another one)."""
    seal, ticket = shared_files(80)
    other, _ = shared_files(80)
    n = ks_nginx(http_extra=files_conf(seal, ticket)).start(timeout=START)
    workers = n.wait_workers(1, timeout=START)
    c = Resumer(cafile, "TLSv1.3")
    c.get(n.port, resume=False)
    return n, workers, c, seal, other


def test_reload_new_seal_key(ks_nginx, cafile):
    """The control of the next test: a reload to another sealing key file
    (same ticket key) is in force in the new workers: a ticket sealed
    under the old key fails there (as in test_resumption_other_seal_key);
    a new ticket resumes."""
    n, old, c, seal, other = ticket_issued(ks_nginx, cafile)
    reload_with_seal_key(n, seal, other)
    n.wait_workers(1, exclude=old, timeout=START)
    with pytest.raises(ssl.SSLError) as e:
        c.get(n.port)
    assert FOREIGN_SEAL_KEY["TLSv1.3"] in str(e.value)
    c.get(n.port, resume=False)
    assert c.get(n.port)[1]


def test_failed_reload_keeps_seal_key(ks_nginx, cafile):
    """A reload that fails after the http block (an unknown directive)
    leaves the running configuration in force, its sealing key too: the
    workers, and a worker the master starts later (after a crash), still
    resume the tickets sealed under it."""
    n, old, c, seal, other = ticket_issued(ks_nginx, cafile)
    ticket_session = c.session
    good = reload_with_seal_key(n, seal, other, broken=True)
    deadline = time.monotonic() + START
    while "unknown_directive_after_http" not in n.error_log():
        assert time.monotonic() < deadline, n.error_log()[-2000:]
        time.sleep(0.1)
    n.write_conf(good)
    assert n.workers() == old
    assert c.get(n.port)[1]
    os.kill(old[0], signal.SIGKILL)
    n.wait_workers(1, exclude=old, timeout=START)
    c.session = ticket_session
    info, reused = c.get(n.port)
    assert reused and info[3] == "r", info


def test_encrypted_key_with_password_file(ks_nginx, cafile, cert):
    """An encrypted private key with ssl_password_file: NGINX serves it
    with keystore off (the control); with keystore on, nginx -t refuses
    the passwords for a keystore: key (nginx-module/patches/0002), not
    with the store's failure to read an encrypted key."""
    d = mpktls.work_dir("encrypted-key")
    enc = os.path.join(d, "enc.key")
    subprocess.run([mpktls.OPENSSL, "pkey", "-in", cert[1], "-out", enc,
                    "-aes256", "-passout", "pass:mpk-tls"], check=True,
                   env=sserver.client_env())
    pw = secret_file(d, "password", b"mpk-tls\n")
    for keystore in (False, True):
        n = ks_nginx(keystore=keystore, certs=(), server_extra=(
            "        ssl_password_file %s;\n" % pw))
        n.write_conf(n.read_conf().replace(cert[1], enc))
        r = n.test_config()
        if keystore:
            assert r.returncode == 1, r.stderr
            assert STORE_PASSWORDS in r.stderr, r.stderr
        else:
            assert r.returncode == 0, r.stderr
            n.start(timeout=START)
            assert get_info(n.port, cafile)[0] == "TLSv1.3"


def test_proxy_to_tls_upstream(ks_nginx, cafile, cert, rsa):
    """A keystore worker as a TLS client (proxy_pass https://, an SSL_CTX
    of the default provider) to a keystore off server of the same
    configuration: the lockdown lets it connect, and the answer comes
    through."""
    off_port, off_server = mixed_servers(cert, rsa)
    n = ks_nginx(http_extra=off_server, server_extra=(
        "        location /up/ {\n"
        "            proxy_pass https://127.0.0.1:%d/;\n"
        "            proxy_ssl_protocols TLSv1.2;\n"
        "        }\n" % off_port)).start(timeout=START)
    ctx = tls_context(cafile, "TLSv1.3")
    with socket.create_connection(("127.0.0.1", n.port), TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(http11("/up/info", close=True))
            data = tc.read_all(tls).decode(errors="replace")
    info = INFO.findall(data)
    # the upstream's own view: TLS 1.2 from the proxy, a new session
    assert info and info[0][0] == "TLSv1.2" and info[0][3] == ".", data


def download(ks_nginx, cafile, keystore, main, location, size):
    """NGINX (keystore "on" or "off") with main in its main context and
    location's directives in "location /slow/", and a file of size random
    bytes there: GET it; (expected body, received body)."""
    n = ks_nginx(keystore=keystore == "on", main_extra=main + "\n",
                 server_extra="        location /slow/ { %s }\n" % location)
    body = os.urandom(size)
    os.makedirs(os.path.join(n.prefix, "html", "slow"))
    with open(os.path.join(n.prefix, "html", "slow", "f.bin"), "wb") as f:
        f.write(body)
    n.start(timeout=START)
    n.wait_workers(1, timeout=START)
    ctx = tls_context(cafile, "TLSv1.3")
    with socket.create_connection(("127.0.0.1", n.port), TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(http11("/slow/f.bin", close=True))
            data = tc.read_all(tls)
    return body, data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("keystore", ["on", "off"])
def test_timer_resolution(ks_nginx, cafile, keystore):
    """timer_resolution: NGINX's SIGALRM handler (setitimer) in a worker
    whose signals go through a signalfd: the worker serves, timers fire
    (a rate-limited download ends complete).  keystore off: the
    control."""
    body, got = download(ks_nginx, cafile, keystore, "timer_resolution 50ms;",
                         "limit_rate 32k;", 64 * 1024)
    assert got == body


@pytest.mark.parametrize("keystore", ["on", "off"])
def test_aio_threads(ks_nginx, cafile, keystore):
    """A thread pool (aio threads: file reads in threads the worker
    starts before its lockdown) serves a file.  keystore off: the
    control."""
    body, got = download(ks_nginx, cafile, keystore,
                         "thread_pool default threads=2;", "aio threads;",
                         256 * 1024)
    assert got == body


# ---- nginx -t refuses ------------------------------------------------------

def line_of(text, needle):
    return text[:text.index(needle)].count("\n") + 1


def refusal(conf, what, arg=None):
    """The message of ngx_http_keystore_refuse() for the first "keystore
    on" of conf (without the fix and its tail)."""
    where = "%s:%d" % (conf, line_of(open(conf).read(), "keystore on;"))
    return '"keystore on" (%s): %s%s; ' % (where, what,
                                          ' "%s"' % arg if arg else "")


def seal_key_refusal(conf, path, why):
    """The message of a refused keystore_seal_key file (T's reason)."""
    where = "%s:%d" % (conf, line_of(open(conf).read(), "keystore_seal_key"))
    return ['"keystore_seal_key" cannot be used: sealing key file "%s": %s'
            % (path, why),
            "(a regular file of 32 bytes or 64 hex digits, not readable by "
            "group or others) in " + where]


# the files of refusal_cases(): (contents, mode)
REFUSAL_FILES = {"zero.key": (bytes(32), 0o600),
                 "short.key": (os.urandom(31), 0o600),
                 "world.key": (os.urandom(32), 0o644),
                 "nonhex.key": (b"g" * 64, 0o600),
                 "ticket.key": (os.urandom(80), 0o600),
                 "password": (b"mpk-tls\n", 0o600)}

# nginx-module/patches/0002: a keystore: key takes no ssl_password_file
STORE_PASSWORDS = "a key from an OSSL_STORE URI takes no passwords"


def refusal_cases(d, port):
    """(id, block, offending text, [expected parts of the message] as a
    function of the configuration file's name)."""
    zero, short, world, nonhex, ticket, password = (
        os.path.join(d, name) for name in REFUSAL_FILES)
    missing = os.path.join(d, "missing.key")
    return [
        ("plain-key", "key", None, lambda c, k: [
            refusal(c, '"ssl_certificate_key" would read the private key '
                    "into NGINX's memory", k),
            'let the keystore read it: "ssl_certificate_key keystore:'
            '/absolute/path/key.pem", or set "keystore off"']),
        ("ktls", "server", "ssl_conf_command Options KTLS;", lambda c, k: [
            refusal(c, 'kTLS ("ssl_conf_command Options KTLS") would hand '
                    "the record keys to the kernel")
            + 'remove KTLS from "ssl_conf_command Options", or set '
            '"keystore off"']),
        ("quic", "server", "listen 127.0.0.1:%d quic;" % port, lambda c, k: [
            refusal(c, "HTTP/3 takes the TLS secrets out of OpenSSL",
                    "127.0.0.1:%d" % port)
            + 'remove "quic" from this server\'s "listen", or set '
            '"keystore off"']),
        ("password-file", "server", "ssl_password_file %s;" % password,
         lambda c, k: [STORE_PASSWORDS]),
        ("ticket-key-without-seal-key", "http",
         "ssl_session_ticket_key %s;" % ticket, lambda c, k: [
             refusal(c, '"ssl_session_ticket_key" files outlive the sealing '
                     "key, which is random per start: resumption would "
                     "fail after a restart")
             + 'add "keystore_seal_key FILE;" to the http block, or set '
             '"keystore off"']),
    ] + [
        ("seal-key-" + name, "http", "keystore_seal_key %s;" % path,
         lambda c, k, path=path, why=why: seal_key_refusal(c, path, why))
        for name, path, why in (
            ("missing", missing, "cannot open: No such file or directory"),
            ("directory", d, "is a directory; expected a regular file"),
            ("short", short, "has 31 bytes; expected exactly 32 raw bytes "
             "or 64 hex digits"),
            ("not-hex", nonhex, "has a character that is not a hex digit "
             "at offset 0"),
            ("mode-0644", world, "is accessible by group or others (mode "
             "0644); expected mode 0600 or stricter (chmod 600)"),
            ("all-zero", zero, "holds an all-zero key"))
    ] + [
        ("cipher-AES128-SHA", "server", "ssl_ciphers AES128-SHA;",
         lambda c, k: [refusal(c, "the keystore does not implement the "
                               "cipher", "AES128-SHA")
                       + 'use "ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20", '
                       'or set "keystore off"']),
        ("cipher-DHE-RSA-AES128-GCM", "server",
         "ssl_ciphers ECDHE+AESGCM:DHE-RSA-AES128-GCM-SHA256;",
         lambda c, k: [refusal(c, "the keystore does not implement the "
                               "cipher", "DHE-RSA-AES128-GCM-SHA256")]),
        ("tls13-suite-CCM", "server",
         "ssl_conf_command Ciphersuites TLS_AES_128_CCM_SHA256;",
         lambda c, k: [refusal(c, "the keystore does not implement the "
                               "TLS 1.3 suite", "TLS_AES_128_CCM_SHA256")
                       + 'leave "ssl_conf_command Ciphersuites" at its '
                       'default, or set "keystore off"']),
        ("group-ffdhe2048", "server", "ssl_ecdh_curve ffdhe2048;",
         lambda c, k: [refusal(c, "the keystore does not implement the key "
                               "exchange group", "ffdhe2048")
                       + 'use "ssl_ecdh_curve X25519MLKEM768:X25519:'
                       'prime256v1:X448:secp384r1:secp521r1" or a part of '
                       'it, or set "keystore off"']),
        ("group-conf-command-ffdhe3072", "server",
         "ssl_conf_command Groups X25519:ffdhe3072;",
         lambda c, k: [refusal(c, "the keystore does not implement the key "
                               "exchange group", "ffdhe3072")]),
        ("early-data", "server", "ssl_early_data on;", lambda c, k: [
            refusal(c, '"ssl_early_data on" is not implemented by the '
                    "keystore")
            + 'set "ssl_early_data off", or set "keystore off"']),
        ("certificate-variables", "server",
         "ssl_certificate %s/$ssl_server_name.crt; ssl_certificate_key "
         "keystore:%s/$ssl_server_name.key;" % (d, d), lambda c, k: [
             refusal(c, "certificates with variables would load their keys "
                     "in workers, per handshake")
             + 'name the files in "ssl_certificate" and '
             '"ssl_certificate_key" without variables, or set "keystore '
             'off"']),
        ("root-workers", "main", "user root;", lambda c, k: [
            '"keystore on" cannot protect keys in workers that run as root; '
            'name an unprivileged account in "user"']),
        ("pcre-jit", "main", "pcre_jit on;", lambda c, k: [
            '"keystore on" cannot lock down workers with "pcre_jit on" (JIT '
            'code is written at run time); set "pcre_jit off"']),
    ]


REFUSALS = [c[0] for c in refusal_cases("/d", 1)]
# the checks that need the whole cycle (the "user", "pcre_jit")
INIT_MODULE_CHECKS = ("root-workers", "pcre-jit")


def with_line(text, block, line):
    """The configuration text with line added at the start of the main
    context, of the http block (after "keystore on;") or at the end of the
    TLS server (before its root)."""
    if block == "main":
        return line + "\n" + text
    if block == "http":
        return text.replace("    keystore on;\n",
                            "    keystore on;\n    %s\n" % line, 1)
    return text.replace("        root ", "        %s\n        root " % line, 1)


@pytest.mark.parametrize("case", REFUSALS)
def test_refused(ks_nginx, cert, case):
    """`nginx -t` fails with exit code 1 and the message; the same
    configuration without the offending line passes."""
    if case == "root-workers" and os.geteuid() != 0:
        pytest.skip("the master is not root: its workers cannot be root")
    n = ks_nginx(status=False, info=False, certs=())
    d = mpktls.work_dir("refused-" + case)
    for name, (data, mode) in REFUSAL_FILES.items():
        secret_file(d, name, data, mode)
    _, block, line, expected = {c[0]: c for c in refusal_cases(
        d, mpktls.free_port())}[case]
    good = n.read_conf()
    if block == "key":
        bad = good.replace("keystore:" + cert[1], cert[1])
        assert bad != good
    else:
        bad = with_line(good, block, line)
    n.write_conf(bad)
    r = n.test_config()
    assert r.returncode == 1, r.stderr
    for part in expected(n.conf, cert[1]):
        assert part in r.stderr, r.stderr
    # a failing init_module ends NGINX (exit(1)) before its own "test
    # failed" line
    if case not in INIT_MODULE_CHECKS:
        assert "test failed" in r.stderr
    n.write_conf(good)
    r = n.test_config()
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def test_seal_key_files_accepted(ks_nginx):
    """The controls of the seal key refusals: raw 32 bytes and 64 hex
    digits with a newline, mode 0600 (0400 too), with and without a
    ticket key file."""
    d = mpktls.work_dir("seal-ok")
    raw = secret_file(d, "raw.key", os.urandom(32))
    text = secret_file(d, "hex.key", os.urandom(32).hex().encode() + b"\n",
                       mode=0o400)
    ticket = secret_file(d, "ticket.key", os.urandom(48))
    for seal, tk in ((raw, None), (text, None), (raw, ticket)):
        n = ks_nginx(http_extra=files_conf(seal, tk))
        r = n.test_config()
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("keystore", ["on", "off"])
def test_default_ciphers_and_groups_narrowed(ks_nginx, cert, keystore):
    """Where ssl_ciphers and the groups are NGINX's defaults, keystore on
    narrows them to what the keystore covers: a TLS 1.2 client that only
    offers AES128-SHA, or a TLS 1.3 one that only offers ffdhe2048, fails
    the handshake; with keystore off (the control) both connect."""
    n = ks_nginx(keystore=keystore == "on").start(timeout=START)
    env = sserver.client_env()
    results = {}
    for what, extra in (("AES128-SHA", ["-tls1_2", "-cipher",
                                        "AES128-SHA"]),
                        ("ffdhe2048", ["-tls1_3", "-groups", "ffdhe2048"]),
                        ("ECDHE-RSA-AES128-GCM-SHA256",
                         ["-tls1_2", "-cipher",
                          "ECDHE-RSA-AES128-GCM-SHA256"])):
        p = subprocess.run(
            [mpktls.OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % n.port,
             "-servername", "localhost", "-brief", *extra],
            input=b"", capture_output=True, timeout=TIMEOUT, env=env)
        results[what] = p.returncode
    expect = 1 if keystore == "on" else 0
    assert results == {"AES128-SHA": expect, "ffdhe2048": expect,
                       "ECDHE-RSA-AES128-GCM-SHA256": 0}


# ---- keystore_status -------------------------------------------------------

def mixed_servers(cert, rsa):
    """A second TLS server with keystore off in the same http block."""
    port = mpktls.free_port()
    return port, CELL_SERVER.format(
        port=port, ec_cert=cert[0], ec_key=cert[1], rsa_cert=rsa[0],
        rsa_key=rsa[1], ssl="        keystore off;",
        locations=STATUS_LOCATIONS)


def test_status_page(ks_nginx):
    """keystore_status of a worker: the keystore's figures, the inspection
    and the lockdown."""
    n = ks_nginx().start(timeout=START)
    workers = n.wait_workers(1, timeout=START)
    st = assert_keystore_worker(n, workers)
    assert list(st) == ["pid", "keystore", "pkey", "gate_crossings",
                        "t_heap_bytes", "t_heap_peak_bytes",
                        "inspected_pages", "rewritten_sites", "unsafe_sites",
                        "lockdown", "signals"]
    assert isinstance(st["signals"], int) and st["signals"] >= 0, st
    assert st["t_heap_peak_bytes"] >= st["t_heap_bytes"] > 0


def test_status_page_keystore_off(ks_nginx):
    """The control: in a configuration without keystore on, the page says
    off and nothing else."""
    n = ks_nginx(keystore=False).start(timeout=START)
    st = n.status()
    assert st == {"pid": n.wait_workers(1)[0], "keystore": "off"}


def test_crossings_grow_with_traffic(ks_nginx, cert, cafile, rsa):
    """A status read costs the same few crossings each time (ks_stats and
    the like); TLS traffic to the keystore server adds crossings; traffic
    to a keystore off server in the same configuration adds none."""
    off_port, off_server = mixed_servers(cert, rsa)
    n = ks_nginx(http_extra=off_server).start(timeout=START)
    n.wait_workers(1, timeout=START)
    s = [n.status()["gate_crossings"] for _ in range(3)]
    read = s[1] - s[0]
    assert read >= 1 and s[2] - s[1] == read, s
    for version in ("TLSv1.3", "TLSv1.2"):
        for _ in range(3):
            info = get_info(off_port, cafile, version)
            assert info[0] == version
    assert n.status()["gate_crossings"] == s[2] + read, \
        "traffic to the keystore off server crossed"
    per_request = []
    for version in ("TLSv1.3", "TLSv1.2"):
        for _ in range(3):
            before = n.status()["gate_crossings"]
            get_info(n.port, cafile, version)
            per_request.append(n.status()["gate_crossings"] - before - read)
    print("crossings: %d per status read; per connection (handshake and "
          "one request): %s" % (read, per_request))
    assert min(per_request) >= 4


def open_connections(port, cafile, count, version="TLSv1.3"):
    """count TLS connections, each after one answered request, left
    open."""
    conns = []
    for _ in range(count):
        ctx = tls_context(cafile, version)
        raw = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(http11("/info"))
        buf = b""
        while not INFO.search(buf.decode(errors="replace")):
            buf += tls.recv(65536)
        conns.append(tls)
    return conns


def close_connections(conns):
    """A last request with "Connection: close" on each, read to the end:
    when the server has closed the socket, it has freed the connection
    (SSL_free() comes before close()), so what is measured next is
    without them."""
    for tls in conns:
        tls.sendall(http11("/info", close=True))
        tc.read_all(tls)
        tls.close()


def test_t_heap_returns_to_baseline(ks_nginx, cafile):
    """Open connections hold T heap (the positive control); once they are
    closed, t_heap_bytes is back to the baseline exactly."""
    n = ks_nginx().start(timeout=START)
    n.wait_workers(1, timeout=START)
    for version in ("TLSv1.3", "TLSv1.2"):      # warm-up: T's lazy set-up
        close_connections(open_connections(n.port, cafile, 2, version))
    base = n.status()["t_heap_bytes"]
    conns = (open_connections(n.port, cafile, 10)
             + open_connections(n.port, cafile, 10, "TLSv1.2"))
    held = n.status()["t_heap_bytes"]
    close_connections(conns)
    after = n.status()["t_heap_bytes"]
    print("T heap: baseline %d, with 20 connections %d, after %d"
          % (base, held, after))
    assert held > base
    assert after == base


# ---- no leak: many requests on many connections ----------------------------

# the figures; MPKTLS_LEAK_REQUESTS / MPKTLS_LEAK_CONNECTIONS change
# them (e.g. for a quick run)
LEAK_REQUESTS = int(os.environ.get("MPKTLS_LEAK_REQUESTS", 100000))
LEAK_CONNECTIONS = int(os.environ.get("MPKTLS_LEAK_CONNECTIONS", 1000))
LEAK_PIPELINE = 10      # requests written at once on a connection

LEAK_CLIENTS = (("TLSv1.3", None),
                ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
                ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"))

# TCG: 1,000 handshakes at once take longer than the 60 s default
LEAK_CONF = """\
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    client_header_timeout 600s;
"""


async def status_async(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ks HTTP/1.0\r\n\r\n")
    data = await reader.read()
    writer.close()
    return mpktls.parse_status(data.partition(b"\r\n\r\n")[2].decode())


class Load:
    """connections TLS connections, all open at once (each waits after its
    first answer until the status page was read with all of them open),
    requests spread over them, LEAK_PIPELINE at a time, the last with
    "Connection: close", each connection read to its end."""

    def __init__(self, port, status_port, cafile, connections, requests):
        assert requests >= connections
        self.port, self.status_port = port, status_port
        self.ctxs = [tls_context(cafile, v, c) for v, c in LEAK_CLIENTS]
        self.per = [requests // connections + (i < requests % connections)
                    for i in range(connections)]
        self.answered = 0
        self.opened = 0
        self.held = None        # the status page with all of them open

    async def batch(self, reader, writer, k, last):
        writer.write(http11("/info") * (k - 1) + http11("/info", close=last))
        for _ in range(k):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK"), head
            line = await reader.readuntil(b"\n")
            assert INFO.match(line.decode()), line
            self.answered += 1

    async def connection(self, i, all_open, go):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.ctxs[i % len(self.ctxs)],
            server_hostname="localhost")
        sent, total = 1, self.per[i]
        await self.batch(reader, writer, 1, total == 1)
        self.opened += 1
        if self.opened == len(self.per):
            all_open.set()
        await go.wait()
        while sent < total:
            k = min(LEAK_PIPELINE, total - sent)
            sent += k
            await self.batch(reader, writer, k, sent == total)
        assert await reader.read() == b""       # the server closed
        writer.close()

    async def observe(self, all_open, go):
        await all_open.wait()
        self.held = await status_async(self.status_port)
        go.set()

    async def main(self):
        all_open, go = asyncio.Event(), asyncio.Event()
        await asyncio.gather(self.observe(all_open, go),
                             *[self.connection(i, all_open, go)
                               for i in range(len(self.per))])

    def run(self):
        asyncio.run(self.main())
        return self


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n),
                                                    max(hard, n)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def test_no_leak(ks_nginx, cafile):
    """LEAK_REQUESTS requests on LEAK_CONNECTIONS connections, all open at
    once (TLS 1.3, and TLS 1.2 with three ciphers), then resumed
    connections: every request is answered, the crossings grow by at
    least one per request, the T heap grows with the open connections
    (the positive control), and after they closed t_heap_bytes is back
    exactly to the baseline taken after a warm-up at the same
    concurrency."""
    raise_nofile(LEAK_CONNECTIONS + 1000)
    n = ks_nginx(main_extra="worker_rlimit_nofile %d;\n"
                 % (2 * LEAK_CONNECTIONS + 1000), http_extra=LEAK_CONF,
                 listen_options=" backlog=%d" % (LEAK_CONNECTIONS + 100))
    n.write_conf(n.read_conf().replace(
        "worker_connections 1024",
        "worker_connections %d" % (LEAK_CONNECTIONS + 1000)))
    n.start(timeout=START)
    n.wait_workers(1, timeout=START)
    t = time.monotonic()
    # warm-up: the same kinds of connections, as many at once as the load
    # (what T sizes once by the number of live objects is sized before the
    # baseline: a leak is growth with the number of requests), and
    # resumption
    warm = 2 * LEAK_CONNECTIONS
    assert Load(n.port, n.status_port, cafile, LEAK_CONNECTIONS,
                warm).run().answered == warm
    resumer = Resumer(cafile, "TLSv1.3")
    for i in range(3):
        resumer.get(n.port, resume=i > 0)
    s0 = n.status()
    t0 = time.monotonic()
    load = Load(n.port, n.status_port, cafile, LEAK_CONNECTIONS,
                LEAK_REQUESTS).run()
    t_load = time.monotonic() - t0
    for _ in range(50):
        assert resumer.get(n.port)[1]
    s1 = n.status()
    held = load.held["t_heap_bytes"]
    print("%d requests on %d connections in %.1f s (warm-up %.1f s); "
          "crossings %d -> %d; T heap: baseline %d, with the %d connections "
          "open %d (%.0f bytes each), after %d, peak %d"
          % (load.answered, LEAK_CONNECTIONS, t_load, t0 - t,
             s0["gate_crossings"], s1["gate_crossings"], s0["t_heap_bytes"],
             LEAK_CONNECTIONS, held,
             (held - s0["t_heap_bytes"]) / LEAK_CONNECTIONS,
             s1["t_heap_bytes"], s1["t_heap_peak_bytes"]))
    assert load.answered == LEAK_REQUESTS
    assert s1["gate_crossings"] - s0["gate_crossings"] >= LEAK_REQUESTS
    assert held > s0["t_heap_bytes"]
    if s1["t_heap_bytes"] != s0["t_heap_bytes"]:
        # for the report: does it grow again with more of the same?
        Load(n.port, n.status_port, cafile, 100, 1000).run()
        pytest.fail("T heap %d bytes after the load, %d at the start; "
                    "after 1,000 more requests on 100 connections: %d"
                    % (s1["t_heap_bytes"], s0["t_heap_bytes"],
                       n.status()["t_heap_bytes"]))


# ---- signals under load ----------------------------------------------------

SIGNALS = int(os.environ.get("MPKTLS_SIGNALS", "100000"))
SIGNALS_TIMEOUT = 1200


class Wrk:
    """wrk loading url with 8 connections until stopped; close: a new TLS
    connection for every request (Connection: close), else keep-alive."""

    def __init__(self, url, close):
        self.proc = subprocess.Popen(
            ["wrk", "-t2", "-c8", "-d%ds" % SIGNALS_TIMEOUT,
             "--timeout", "60s", *(["-H", "Connection: close"] if close
                                   else []), url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self):
        """(requests, socket errors, non-2xx/3xx responses, report)."""
        running = self.proc.poll() is None
        self.proc.send_signal(signal.SIGINT)    # wrk reports when interrupted
        out = self.proc.communicate(timeout=120)[0]
        assert running, "wrk ended early:\n" + out
        m = re.search(r"(\d+) requests in", out)
        assert m, out
        e = re.search(r"Socket errors: connect (\d+), read (\d+), "
                      r"write (\d+), timeout (\d+)", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return (int(m.group(1)), sum(map(int, e.groups())) if e else 0,
                int(bad.group(1)) if bad else 0, out)


class Signaller:
    """Sends SIGUSR1 (log reopening) to a server's two workers and its
    master, and SIGHUP reloads to the master; counts the signals where
    they arrive: those each worker read from its signalfd (SIGUSR1 and
    timer_resolution's SIGALRM; a signal sent while one of its kind is
    pending is merged with it and not counted), as its status page says
    (a request reaches whichever worker accepts it), and those sent to the
    master, which is idle in sigsuspend()."""

    def __init__(self, n, pids):
        self.n, self.pids = n, pids
        self.retired = 0            # read by workers since reloaded
        self.to_master = self.usr1 = self.reloads = 0
        self.t0 = time.monotonic()

    def burst(self, seconds):
        """SIGUSR1 for seconds: 100 to the workers and 1 to the master
        every 50 ms."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for i in range(100):
                try:
                    os.kill(self.pids[i % 2], signal.SIGUSR1)
                    self.usr1 += 1
                except ProcessLookupError:
                    pass
            self.n.signal(signal.SIGUSR1)
            self.to_master += 1
            time.sleep(0.05)

    def taken(self):
        """{pid: signals read from its signalfd} of the current workers,
        each locked down."""
        got = {}
        for _ in range(200):
            st = self.n.status()
            if st["pid"] in self.pids:
                assert st["lockdown"] == "on", st
                got[st["pid"]] = st["signals"]
            if len(got) == len(self.pids):
                return got
        raise AssertionError("no status from %s (got %s)" % (self.pids, got))

    def total(self):
        taken = self.taken()
        total = self.retired + sum(taken.values()) + self.to_master
        print("%.0f s: %d signals (workers %s, %d to the master)"
              % (time.monotonic() - self.t0, total, taken, self.to_master),
              flush=True)
        return total

    def reload(self):
        self.retired += sum(self.taken().values())
        self.n.signal(signal.SIGHUP)
        self.to_master += 1
        self.reloads += 1
        self.pids = self.n.wait_workers(2, exclude=self.pids, timeout=START)


def test_signals_under_load(ks_nginx):
    """SIGNALS signals while wrk loads a keystore server (two workers,
    timer_resolution 1ms: a SIGALRM each millisecond to each; SIGUSR1 to
    the workers and the master; three SIGHUP reloads), in two parts:
    the reloads under new TLS connections (a handshake per request), then
    the rest under keep-alive requests (TLS records), where a worker reads
    more signals a second.  Every worker ends only by a reload, with exit
    code 0; every request is answered with 200; each generation of
    workers is locked down.
    Reloads are not made under keep-alive: on a reload NGINX closes the
    old workers' idle keep-alive connections, and wrk counts each close as
    a read error (8 per reload, as many as its connections, the same with
    keystore off: a property of NGINX and wrk, not of the keystore)."""
    n = ks_nginx(workers=2, main_extra="timer_resolution 1ms;\n")
    n.start(timeout=START, daemon=True)
    sig = Signaller(n, n.wait_workers(2, timeout=START))
    url = "https://127.0.0.1:%d/info" % n.port
    deadline = time.monotonic() + SIGNALS_TIMEOUT
    results = []

    wrk = Wrk(url, close=True)
    try:
        for _ in range(3):
            sig.burst(5)
            sig.reload()
        sig.burst(5)
    finally:
        results.append(("new connections", 3) + wrk.stop())

    wrk = Wrk(url, close=False)
    try:
        while sig.total() < SIGNALS:
            assert time.monotonic() < deadline, "too slow"
            sig.burst(5)
    finally:
        results.append(("keep-alive", 0) + wrk.stop())

    total = sig.total()
    print("%d signals in %.0f s: %d read by the workers from their "
          "signalfd (SIGALRM, SIGUSR1; %d SIGUSR1 sent to them), %d sent to "
          "the master (SIGUSR1, %d SIGHUP)"
          % (total, time.monotonic() - sig.t0, total - sig.to_master,
             sig.usr1, sig.to_master, sig.reloads))
    for what, reloads, requests, errors, non_2xx, out in results:
        print("wrk, %s, %d reloads: %d requests, %d socket errors, %d "
              "non-2xx\n%s" % (what, reloads, requests, errors, non_2xx, out))
        assert requests > 0 and errors == 0 and non_2xx == 0, out

    log = n.error_log()
    for m in re.finditer(r"(\d+) exited (on signal \d+|with code [1-9]\d*)", log):
        raise AssertionError("worker %s: %s; its lines:\n%s" % (
            m.group(1), m.group(0),
            "\n".join(l for l in log.splitlines()
                      if "#%s:" % m.group(1) in l or m.group(0) in l)))
    assert log.count("exited with code 0") >= 6     # the reloaded workers
    assert sig.reloads == 3 and total >= SIGNALS
    assert_keystore_worker(n, sig.pids)


# ---- key exposure ----------------------------------------------------------

def tls12_prf(secret, label, seed, length, hash_fn):
    """RFC 5246 5: P_hash(secret, label + seed)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_fn).digest()
        out += hmac.new(secret, a + seed, hash_fn).digest()
    return out[:length]


# key and IV lengths of the TLS 1.2 AEAD ciphers (RFC 5288, RFC 7905)
TLS12_KEY_IV = {"AES128-GCM": (16, 4), "AES256-GCM": (32, 4),
                "CHACHA20": (32, 12)}


def tls12_items(conn, master, server_random, cipher):
    """The record keys of one TLS 1.2 connection (key block, RFC 5246
    6.3) from its master secret; ChaCha20's IVs (12 bytes, public) too."""
    kind = next(k for k in TLS12_KEY_IV if k in cipher)
    klen, ivlen = TLS12_KEY_IV[kind]
    h = hashlib.sha384 if cipher.endswith("SHA384") else hashlib.sha256
    block = tls12_prf(master, b"key expansion",
                      server_random + bytes.fromhex(conn),
                      2 * klen + 2 * ivlen, h)
    items = [keyscan.Item(keyscan.RECORD_KEY, conn, "client_write_key",
                          block[:klen]),
             keyscan.Item(keyscan.RECORD_KEY, conn, "server_write_key",
                          block[klen:2 * klen])]
    if ivlen == 12:
        items += [keyscan.Item(keyscan.PUBLIC_IV, conn, name,
                               block[2 * klen + i * 12:2 * klen + (i + 1)
                                     * 12])
                  for i, name in enumerate(("client_write_iv",
                                            "server_write_iv"))]
    return items


def server_random(msg_output):
    """The random of the ServerHello in s_client -msg output."""
    m = re.search(r"^<<< TLS 1\.[23], Handshake \[length \w+\], "
                  r"ServerHello\n((?:[ \t]+[0-9a-f ]+\n)+)", msg_output, re.M)
    data = bytes.fromhex("".join(m.group(1).split()))
    return data[6:38]


def rsa_private_items(key_file):
    """The private parts of an RSA key (d, p, q, dP, dQ, qInv), big-endian
    and as BIGNUM words (little-endian)."""
    out = subprocess.run([mpktls.OPENSSL, "pkey", "-in", key_file, "-noout",
                          "-text"], capture_output=True, text=True,
                         check=True, env=sserver.client_env()).stdout
    items = []
    for name in ("privateExponent", "prime1", "prime2", "exponent1",
                 "exponent2", "coefficient"):
        m = re.search(r"^%s:\s*\n((?:\s+[0-9a-f:]+\n)+)" % name, out, re.M)
        value = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
        items += [keyscan.Item(keyscan.PRIVATE_KEY, "rsa", name, value),
                  keyscan.Item(keyscan.PRIVATE_KEY, "rsa", name + " (LE)",
                               value[::-1])]
    return items


def private_key_items(cert, rsa):
    scalar = keyscan.ec_private_scalar(mpktls.OPENSSL, cert[1],
                                       env=sserver.client_env())
    items = [keyscan.Item(keyscan.PRIVATE_KEY, "ec", "scalar", scalar),
             keyscan.Item(keyscan.PRIVATE_KEY, "ec", "scalar (LE)",
                          scalar[::-1])]
    for name, path in (("ec", cert[1]), ("rsa", rsa[1])):
        with open(path, "rb") as f:     # the PEM text as the file has it
            body = [l for l in f.read().splitlines()
                    if l and not l.startswith(b"-----")]
        items.append(keyscan.Item(keyscan.PRIVATE_KEY, name, "PEM line 2",
                                  body[1]))
    return items + rsa_private_items(rsa[1])


HEX_RUN = re.compile(rb"[0-9a-fA-F]{64,}")


def count_hits(data, items):
    """keyscan.count_hits, faster: the hex forms of secrets are looked
    for only in the runs of 64 or more hex digits."""
    hexruns = b"\n".join(HEX_RUN.findall(data))
    hits = []
    for item in items:
        for enc, pattern in keyscan.encodings(item):
            if item.name.startswith("PEM") and enc != "raw":
                continue
            n = (data if enc == "raw" else hexruns).count(pattern)
            if n:
                hits.append((item, enc, n))
    return hits


def worker_idle(pid, port, timeout=TIMEOUT):
    """Wait until the worker sleeps and has read everything its clients
    sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            queued = [int(l.split()[4].split(":")[1], 16)
                      for l in list(f)[1:]
                      if int(l.split()[1].split(":")[1], 16) == port
                      and l.split()[3] == "01"]
        if keyscan.process_state(pid) == "S" and not any(queued):
            return True
        time.sleep(0.05)
    return False


def exposure_traffic(n, cafile, d):
    """Connections of every client and kind: every TLS 1.3 suite and group
    and TLS 1.2 cipher with s_client (-msg: the server randoms), Python,
    curl (HTTP/2) and gnutls-cli with resumption.  Returns (key logs,
    {client random: (server random, cipher)} of the TLS 1.2 ones, extra
    items)."""
    keylogs, randoms, extra = [], {}, []
    counter = itertools.count()

    def kl(name):
        keylogs.append(os.path.join(d, "%s-%d.keys" % (name, next(counter))))
        return keylogs[-1]

    sess = os.path.join(d, "s_client.sess")
    cells = [("TLSv1.3", s, g) for s in TLS13_SUITES for g in TLS13_GROUPS]
    cells += [("TLSv1.2", c, g) for c, g in zip(TLS12_CIPHERS, (
        "X25519", "P-256", "P-384", "P-521", "X448", "X25519"))]
    for i, (version, suite, group) in enumerate(cells):
        log = kl("s_client")
        argv = tc.s_client_argv(
            n.port, cafile, keylog=log, version=version, suite=suite,
            groups=group if version == "TLSv1.3" else group + ":P-256",
            sess_out=sess if i == 0 else None, extra=["-ign_eof", "-msg"])
        p = subprocess.run(argv, input=http11("/info", close=True),
                           capture_output=True, timeout=TIMEOUT,
                           env=sserver.client_env())
        out = p.stdout.decode(errors="replace")
        info = INFO.findall(out)
        assert info and info[0][:2] == (version, suite), out[-3000:]
        if version == "TLSv1.2":
            conn = next(iter(keyscan.parse_keylog(log)))
            randoms[conn] = (server_random(out), suite)
    p = subprocess.run(tc.s_client_argv(n.port, cafile,
                                        keylog=kl("s_client-resumed"),
                                        sess_in=sess, suite=cells[0][1],
                                        extra=["-ign_eof", "-brief"]),
                       input=http11("/info", close=True), capture_output=True,
                       timeout=TIMEOUT, env=sserver.client_env())
    assert INFO.findall(p.stdout.decode())[0][3] == "r", p.stdout
    psk = keyscan.session_master_key(mpktls.OPENSSL, sess,
                                     env=sserver.client_env())
    extra.append(keyscan.Item(keyscan.SECRET, "ticket", "s_client's PSK",
                              psk))
    for version in ("TLSv1.3", "TLSv1.2"):
        py = tc.PythonClient(cafile, kl("python"), version)
        py.get(n.port)
        assert py.get(n.port, resume=True).session_reused
        r = tc.curl_get(n.port, cafile, count=2, version=version,
                        keylog=kl("curl"), extra=["--http2"])
        assert r.returncode == 0, r.output[-2000:]
        tc.gnutls_get(n.port, cafile, keylog=kl("gnutls"),
                      priority=tc.gnutls_priority(version), resume=True)
    return keylogs, randoms, extra


def run_exposure(keystore, cert, cafile, rsa, d):
    """One NGINX (one worker; keystore on, or off for the control, with
    the key files named as they are), the traffic, two connections left
    open in the middle of a request (TLS 1.3 after a KeyUpdate, TLS 1.2),
    then the worker's and the master's memory read from outside, outside
    T.  Returns the figures and hits."""
    t0 = time.monotonic()
    os.makedirs(d)
    n = mpktls.Nginx(cert[0], cert[1], keystore=keystore, certs=[rsa],
                     info=True, name="exposure")
    n.start(timeout=START)
    live = []
    try:
        worker = n.wait_workers(1, timeout=START)[0]
        keylogs, randoms, extra = exposure_traffic(n, cafile, d)
        live13_log = os.path.join(d, "live13.keys")
        live13 = tc.s_client_interactive(n.port, cafile, keylog=live13_log,
                                         suite=TLS13_SUITES[2],
                                         groups="X25519MLKEM768")
        live.append(live13)
        assert live13.wait_output(b"Verification: OK", TIMEOUT) or \
            live13.wait_output(b"Verify return code: 0", TIMEOUT), \
            live13.output()
        live13.send("K\n")      # KeyUpdate, update_requested
        assert live13.wait_output(b"KeyUpdate", TIMEOUT), live13.output()
        live13.send("GET")
        live12_log = os.path.join(d, "live12.keys")
        live12 = tc.s_client_interactive(n.port, cafile, keylog=live12_log,
                                         version="TLSv1.2",
                                         suite="ECDHE-RSA-AES256-GCM-SHA384",
                                         groups="P-384")
        live.append(live12)
        assert live12.wait_output(b"Verify return code: 0", TIMEOUT) or \
            live12.wait_output(b"Verification: OK", TIMEOUT), \
            live12.output()
        live12.send("GET")
        assert worker_idle(worker, n.port), "the worker did not read"
        t_traffic = time.monotonic() - t0
        t = time.monotonic()
        with keyscan.Stopped(worker):
            mem = keyscan.Memory(worker, read_t=False)
        with keyscan.Stopped(n.master_pid):
            master = keyscan.Memory(n.master_pid, read_t=False)
        t_read = time.monotonic() - t
        for c in live:
            c.send(" /info HTTP/1.0\r\n\r\n")
        assert live13.wait_output(b"TLSv1.3 TLS_CHACHA20", TIMEOUT), \
            live13.output()[-2000:]
        assert live12.wait_output(b"TLSv1.2 ECDHE-RSA-AES256", TIMEOUT), \
            live12.output()[-2000:]
        randoms_live12 = next(iter(keyscan.parse_keylog(live12_log)))
        randoms[randoms_live12] = (server_random(live12.output()),
                                   "ECDHE-RSA-AES256-GCM-SHA384")
    finally:
        for c in live:
            c.close()
        n.stop()
    t = time.monotonic()
    sessions = keyscan.parse_keylog(*keylogs)
    live_conns = {
        "TLSv1.3": next(iter(keyscan.parse_keylog(live13_log))),
        "TLSv1.2": randoms_live12}
    sessions.update(keyscan.parse_keylog(live13_log, live12_log))
    items = list(extra)
    for conn, secrets in sessions.items():
        its = keyscan.session_items(conn, secrets)
        if conn not in live_conns.values():     # KeyUpdate: live only
            its = [i for i in its
                   if not re.search(r"_TRAFFIC_SECRET_[1-9]", i.name)]
        items += its
        if conn in randoms and "CLIENT_RANDOM" in secrets:
            items += tls12_items(conn, secrets["CLIENT_RANDOM"],
                                 *randoms[conn])
    items += private_key_items(cert, rsa)
    tls12_conns = {c for c, s in sessions.items() if "CLIENT_RANDOM" in s}
    hits = count_hits(mem.data, items)
    master_hits = count_hits(master.data, items)
    return {
        "mode": "keystore" if keystore else "control",
        "connections": len(sessions), "items": len(items),
        "tls12": len(tls12_conns), "tls12_conns": tls12_conns,
        "hits": hits, "master_hits": master_hits, "live": live_conns,
        "worker": {"u_bytes": mem.u_bytes, "t_bytes": mem.t_bytes,
                   "pkeys": mem.pkeys, "unreadable": mem.unreadable},
        "master": {"u_bytes": master.u_bytes, "t_bytes": master.t_bytes,
                   "pkeys": master.pkeys, "unreadable": master.unreadable},
        "seconds": {"traffic": t_traffic, "read": t_read,
                    "search": time.monotonic() - t},
    }


def report(e):
    lines = ["%s: %d connections (%d TLS 1.2), %d items; %s"
             % (e["mode"], e["connections"], e["tls12"], e["items"],
                ", ".join("%s %.1f s" % kv for kv in e["seconds"].items()))]
    for who, hits in (("worker", e["hits"]), ("master", e["master_hits"])):
        m = e[who]
        lines.append("  %s: U %.1f MiB read, T %.1f MiB skipped (pkeys %s), "
                     "unreadable %s; hits by kind: %s"
                     % (who, m["u_bytes"] / 2**20, m["t_bytes"] / 2**20,
                        m["pkeys"], m["unreadable"],
                        keyscan.summarize(hits)))
        for item, enc, count in hits:
            lines.append("    %-13s %-8s %-45s %s x%d"
                         % (item.kind, item.conn[:8], item.name, enc, count))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def exposure(cert, cafile, rsa, work):
    """exposure(mode): the run of that mode ("keystore" or "control"),
    made once; a run that failed fails every test that asks for it."""
    @functools.lru_cache(maxsize=None)
    def run(mode):
        try:
            return run_exposure(mode == "keystore", cert, cafile, rsa,
                                os.path.join(work, "exposure-" + mode)), None
        except Exception:
            return None, traceback.format_exc()

    def get(mode):
        result, error = run(mode)
        if error:
            pytest.fail("the %s run failed:\n%s" % (mode, error))
        return result

    return get


MODES = ["keystore", "control"]


def session_hits(e, version, conns=None):
    """The worker's hits of session secrets and keys of the connections
    of one version (or of conns only)."""
    return [h for h in e["hits"] if h[0].kind in keyscan.SESSION_KINDS
            and (h[0].conn in e["tls12_conns"]) == (version == "TLSv1.2")
            and (conns is None or h[0].conn in conns)]


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
@pytest.mark.parametrize("mode", MODES)
def test_exposure_worker_sessions(exposure, mode, version):
    """The worker after traffic: with keystore on, no secret of any
    connection of the version and no key derived from one in U; the
    control finds the open connection's secret and keys."""
    e = exposure(mode)
    print(report(e))
    assert e["connections"] >= 30 and e["tls12"] >= 6
    assert all(name.startswith("[") for name, _ in
               e["worker"]["unreadable"] + e["master"]["unreadable"]), e
    if mode == "keystore":
        assert len(e["worker"]["pkeys"]) == 1, e["worker"]
        assert session_hits(e, version) == [], report(e)
    else:
        assert e["worker"]["pkeys"] == []
        live = session_hits(e, version, [e["live"][version]])
        kinds = {h[0].kind for h in live}
        assert kinds >= {keyscan.SECRET, keyscan.RECORD_KEY}, \
            "the control did not find the open connection's secret and " \
            "record keys: the scanner is broken\n" + report(e)


@pytest.mark.parametrize("mode", MODES)
def test_exposure_public_ivs(exposure, mode):
    """The open connections' IVs (public by design, derived from the same
    secrets: TLS 1.3's, and TLS 1.2 ChaCha20's are 12 bytes) are in U in
    both runs: the key logs, the derivation and the scan are right."""
    e = exposure(mode)
    ivs = [h for h in e["hits"] if h[0].kind == keyscan.PUBLIC_IV
           and h[0].conn == e["live"]["TLSv1.3"]]
    assert ivs, report(e)


@pytest.mark.parametrize("who", ["worker", "master"])
@pytest.mark.parametrize("mode", MODES)
def test_exposure_private_key(exposure, mode, who):
    """The server's private keys (ECDSA scalar, RSA's d, p, q, ..., the
    PEM text): none in U with keystore on (the keystore reads the files
    into T); the control, which reads them in the master, has them in
    both processes."""
    e = exposure(mode)
    hits = e["hits"] if who == "worker" else e["master_hits"]
    found = [h for h in hits if h[0].kind == keyscan.PRIVATE_KEY]
    if mode == "keystore":
        assert found == [], report(e)
    else:
        assert {h[0].conn for h in found} == {"ec", "rsa"}, report(e)


def test_exposure_master_sessions(exposure):
    """The master never serves: no session secret in it either way."""
    e = exposure("keystore")
    assert [h for h in e["master_hits"]
            if h[0].kind in keyscan.SESSION_KINDS] == [], report(e)
