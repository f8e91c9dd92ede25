"""The keystore provider in `openssl s_server` (openssl-patch/keystore-
openssl.cnf) against real clients: Python's ssl, build/bin/openssl
s_client, curl and gnutls-cli; and the key-exposure test, the core claim.

- test_handshake: TLS 1.3 with each cipher suite and group (the server
  takes only that suite and group); the server's key log holds tokens,
  never the client's secrets.
- test_resumption: session tickets, a second connection resumes.
- test_key_update: KeyUpdate in both directions, with data after each.
- test_hello_retry_request: the client's key share is for a group the
  server does not take.
- test_seal_key_file_*: the sealing key from openssl.cnf (seal_key_file
  in the provider's section): processes with the same file make the same
  tokens; a bad file keeps the provider from starting.
- test_exposure_*: after real traffic (every suite and group, resumption,
  KeyUpdate, several clients) and with one connection still open, the
  server is stopped and its memory read from outside (/proc/PID/mem),
  skipping only the keystore's mappings (ProtectionKey != 0).  Every secret
  the clients logged, the record and Finished keys derived from them and
  the server's private key are searched for.  With the provider: no
  session secret, no derived key and no private key (s_server loads it
  as keystore:/path, so T reads the file); the same s_server without the
  provider (the control, which reads the key file itself) shows them,
  and the public IVs derived from the same secrets are found in both, so
  the scanner and the derivation work.

The cases come from tests/lib/provider_matrix.py.  MPK is needed: on a CPU
without pku, test_provider_interop_guest.py runs this file in the QEMU
guest (one boot) and reports each case.
"""

import itertools
import os
import re
import subprocess
import time
import traceback

import pytest

import guest_suite
import keyscan
import mpktls
import provider_matrix as pm
import sserver
import tls_clients as tc

guest_suite.skip_without_mpk("test_provider_interop_guest.py")
if not os.path.exists(sserver.MODULE):
    pytest.skip("no provider module %s (make)" % sserver.MODULE,
                allow_module_level=True)



@pytest.fixture(scope="module")
def work():
    return mpktls.work_dir("provider-interop")


@pytest.fixture(scope="module")
def servers(cert, work):
    """servers(name, **SServer kwargs): one running s_server per name,
    started on first use; all stopped at the end of the module."""
    made = {}

    def get(name, **kwargs):
        if name not in made or made[name].proc.poll() is not None:
            kwargs.setdefault("keylog", os.path.join(work, name + ".keys"))
            made[name] = sserver.SServer(cert[0], cert[1], **kwargs).start()
        return made[name]

    yield get
    for s in made.values():
        s.stop()


_n = itertools.count()


def keylog_path(work, what):
    return os.path.join(work, "%s-%d.keys" % (what, next(_n)))


SEALED_LABELS = {
    "TLSv1.3": ("CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                "EXPORTER_SECRET"),
    "TLSv1.2": ("CLIENT_RANDOM",),      # the master secret
}


def assert_sealed_sessions(server_keylog, client):
    """Every connection the client logged ({random: {label: secret}}) is
    in the server's key log, and each of its secrets differs there: the
    server's libssl holds tokens.  Returns the number of connections."""
    server = keyscan.parse_keylog(server_keylog)
    assert client, "the client logged no secrets"
    for random, secrets in client.items():
        assert random in server, "connection %s not in the server's key " \
            "log" % random[:16]
        version = "TLSv1.2" if "CLIENT_RANDOM" in secrets else "TLSv1.3"
        for label in SEALED_LABELS[version]:
            assert label in secrets and label in server[random], label
            assert len(secrets[label]) == len(server[random][label])
            assert secrets[label] != server[random][label], \
                "%s is the same on both sides: not sealed" % label
    return len(client)


def assert_sealed(server_keylog, client_keylog):
    return assert_sealed_sessions(server_keylog,
                                  keyscan.parse_keylog(client_keylog))


def get_once(client, port, cafile, keylog, version="TLSv1.3", suite=None):
    """One GET over exactly `version`; the suite is the server's choice
    (TLS 1.3) or offered alone where the client can (TLS 1.2)."""
    if client == "python":
        return tc.PythonClient(cafile, keylog, version, suite).get(port)
    if client == "s_client":
        return tc.s_client_get(port, cafile, keylog=keylog, version=version,
                               suite=suite)
    if client == "curl":
        return tc.curl_get(port, cafile, keylog=keylog, version=version,
                           extra=["--ciphers", suite]
                           if suite and version != "TLSv1.3" else [])
    if client == "gnutls":
        return tc.gnutls_get(port, cafile, keylog=keylog,
                             priority=tc.gnutls_priority(version))
    raise ValueError(client)


def test_provider_is_active():
    """The configuration loads the keystore next to the default provider
    (start() of every provider server also checks the keystore's pkey)."""
    assert sserver.active_providers(True) == ["default", "keystore"]
    assert sserver.active_providers(False) == ["default"]


SUITE_OPTION = {"TLSv1.3": "-ciphersuites", "TLSv1.2": "-cipher"}


@pytest.mark.parametrize("version,client,suite,group",
                         pm.handshake_params())
def test_handshake(servers, cert, work, version, client, suite, group):
    """One GET over `version` with `suite` and `group`, which the server
    takes alone; its key log holds other values than the client's."""
    why = tc.client_lacks(client, group)
    if why:
        pytest.skip(why)
    srv = servers("hs-%s-%s-%s" % (version, suite, group), version=version,
                  args=[SUITE_OPTION[version], suite, "-groups", group])
    keylog = keylog_path(work, client)
    r = get_once(client, srv.port, cert[0], keylog, version, suite)
    assert r.sessions == [(False, version, suite)], r.output[-3000:]
    assert_sealed(srv.keylog, keylog)


@pytest.mark.parametrize("client,suite", pm.resumption_params())
def test_resumption(servers, cert, work, client, suite):
    """A full handshake, then a second connection that resumes with the
    server's ticket (stateless: the sealed session inside the ticket)."""
    srv = servers("res-%s" % suite, args=[
        "-ciphersuites", suite, "-groups", ":".join(pm.SUPPORTED_GROUPS)])
    keylog = keylog_path(work, client)
    if client == "python":
        c = tc.PythonClient(cert[0], keylog)
        first = c.get(srv.port)
        second = c.get(srv.port, resume=True)
        assert second.session_reused
        sessions = first.sessions + second.sessions
    elif client == "s_client":
        sess = os.path.join(work, "res-%d.sess" % next(_n))
        first = tc.s_client_get(srv.port, cert[0], keylog=keylog,
                                sess_out=sess)
        second = tc.s_client_get(srv.port, cert[0], keylog=keylog,
                                 sess_in=sess)
        assert "Reused, TLSv1.3" in second.output
        sessions = first.sessions + second.sessions
    elif client == "curl":
        second = tc.curl_get(srv.port, cert[0], count=2, keylog=keylog)
        sessions = second.sessions
    else:
        second = tc.gnutls_get(srv.port, cert[0], keylog=keylog,
                               priority=tc.gnutls_priority(), resume=True)
        assert "This is a resumed session" in second.output, second.output
        # the first connection sent no GET: its page is not there
        sessions = [(False, "TLSv1.3", suite)] + second.sessions
    assert sessions == [(False, "TLSv1.3", suite), (True, "TLSv1.3", suite)], \
        second.output[-3000:]
    assert assert_sealed(srv.keylog, keylog) == 2


# ---- KeyUpdate ------------------------------------------------------------

KU_SENT = ">>> TLS 1.3, Handshake [length 0005], KeyUpdate"
KU_LINE = re.compile(r"^(<<<|>>>) TLS 1\.3, Handshake \[length 0005\], "
                     r"KeyUpdate\n\s+18 00 00 01 0([01])", re.M)


def key_updates(text):
    """[(direction, requested)] of the KeyUpdate messages in -msg output:
    ("sent"|"received", True|False)."""
    return [("sent" if m.group(1) == ">>>" else "received",
             m.group(2) == "1") for m in KU_LINE.finditer(text)]


class PyPeer:
    """Python's ssl as an interactive peer (a socket and a line buffer)."""

    def __init__(self, cafile, keylog, port):
        self.sock = tc.PythonClient(cafile, keylog).connect(port)
        self.sock.settimeout(60)
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def wait_output(self, needle, timeout=60, since=0, count=1):
        while self.buf.count(needle) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def mark(self):
        return len(self.buf)

    def close(self):
        self.sock.close()
        return 0


def exchange(srv, peer, tag, server_first=False):
    """Data in both directions; each side must see the other's line.  The
    side that sent a KeyUpdate sends first, so that the peer reads it (and
    answers an update_requested) before it sends its own data."""
    def to_server():
        line = "client-%s\n" % tag
        peer.send(line)
        assert srv.wait_output(line.encode(), 60), \
            "the server did not get %r:\n%s" % (line, srv.output()[-2000:])

    def to_client():
        line = "server-%s\n" % tag
        srv.send(line)
        assert peer.wait_output(line.encode(), 60), \
            "the client did not get %r" % line

    for step in ((to_client, to_server) if server_first
                 else (to_server, to_client)):
        step()


@pytest.mark.parametrize("client,suite", pm.key_update_params())
def test_key_update(cert, work, client, suite):
    """KeyUpdate both ways: a line "k"/"K" on the sending side's stdin
    (K: update_requested, so the peer updates its sending keys too), data
    in both directions after each one; the server's -msg output counts the
    KeyUpdate messages it sent and received."""
    keylog = keylog_path(work, client)
    server_log = os.path.join(work, "ku-%d.keys" % next(_n))
    with sserver.SServer(cert[0], cert[1], www=False, keylog=server_log,
                         args=["-msg", "-ciphersuites", suite, "-groups",
                               ":".join(pm.SUPPORTED_GROUPS)]) as srv:
        if client == "s_client":
            peer = tc.s_client_interactive(srv.port, cert[0],
                                           keylog=keylog)
        elif client == "gnutls":
            peer = tc.gnutls_interactive(srv.port, cert[0], keylog=keylog,
                                         priority=tc.gnutls_priority())
        else:
            peer = PyPeer(cert[0], keylog, srv.port)
        try:
            exchange(srv, peer, "0")
            expected = []
            for side in pm.KEY_UPDATE_CLIENTS[client]:
                for cmd in ("k", "K"):
                    # the sender drops what it read with the command: wait
                    # until the KeyUpdate went out before sending data
                    sender = peer if side == "client" else srv
                    n = sender.output().count(KU_SENT)
                    sender.send(cmd + "\n")
                    assert sender.wait_output(KU_SENT.encode(), 60,
                                              count=n + 1), \
                        sender.output()[-3000:]
                    requested = cmd == "K"
                    if side == "client":
                        expected.append(("received", requested))
                        if requested:
                            expected.append(("sent", False))
                    else:
                        expected.append(("sent", requested))
                        if requested:
                            expected.append(("received", False))
                    exchange(srv, peer, "%s-%s" % (side, cmd),
                             server_first=side == "server")
            assert sorted(key_updates(srv.output())) == sorted(expected), \
                srv.output()[-4000:]
        finally:
            peer.close()
        assert_sealed(srv.keylog, keylog)


# ---- HelloRetryRequest ------------------------------------------------------

CURL_NAMES = {"secp256r1": "P-256", "X25519": "X25519"}


@pytest.mark.parametrize("client,offer,group", pm.hrr_params())
def test_hello_retry_request(servers, cert, work, client, offer, group):
    """The client sends a key share for `offer` only; the server takes only
    `group`, asks again (HelloRetryRequest) and the handshake ends on it."""
    srv = servers("hrr-%s" % group, args=["-msg", "-groups", group])
    keylog = keylog_path(work, client)
    mark = srv.mark()
    if client == "s_client":
        r = tc.s_client_get(srv.port, cert[0], keylog=keylog,
                            groups="%s:%s" % (offer, group))
        assert re.search(r"^(Negotiated TLS1.3 group|Peer Temp Key): %s\b"
                         % group, r.output, re.M | re.I), r.output
    elif client == "curl":
        r = tc.curl_get(srv.port, cert[0], keylog=keylog, extra=[
            "--curves", "%s:%s" % (CURL_NAMES[offer], CURL_NAMES[group])])
    else:
        r = tc.gnutls_get(srv.port, cert[0], keylog=keylog,
                          priority=tc.gnutls_priority(groups=[offer, group]))
        assert "(ECDHE-%s)" % group.upper() in r.output, r.output
    assert r.sessions and r.sessions[0][0] is False, r.output[-3000:]
    out = srv.output(mark)
    hellos = re.findall(r"^<<< TLS 1\.3, Handshake \[length \w+\], "
                        r"ClientHello$", out, re.M)
    assert len(hellos) == 2, "no HelloRetryRequest:\n" + out[-3000:]
    assert_sealed(srv.keylog, keylog)


# ---- the sealing key from openssl.cnf ----------------------------------------

# libssl's early-secret extract (TLS13-KDF, prefix "tls13 ", label
# "derived"); marked, T seals the output with the sealing key
EXTRACT = ["kdf", "-keylen", "32", "-kdfopt", "digest:SHA2-256", "-kdfopt",
           "mode:EXTRACT_ONLY", "-kdfopt", "hexprefix:746c73313320",
           "-kdfopt", "label:derived"]
MARKED = ["-kdfopt", "mpktls-out:secret", "-kdfopt", "mpktls-key-token:0"]


def extract(cnf, secret, marked=True):
    """The extract of secret by `openssl kdf`, a process of its own, with
    the configuration cnf: its 32 bytes (marked: a token), or None if the
    command failed."""
    r = subprocess.run(
        [mpktls.OPENSSL] + EXTRACT + ["-kdfopt", "hexkey:" + secret.hex()]
        + (MARKED if marked else []) + ["TLS13-KDF"],
        env=sserver.server_env(True, cnf), capture_output=True, text=True,
        timeout=120)
    if r.returncode != 0:
        return None
    return bytes.fromhex(r.stdout.strip().replace(":", ""))


def write_key(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)
    os.chmod(path, mode)
    return path


def test_seal_key_file_shared(work):
    """Processes whose openssl.cnf names the same seal_key_file make the
    same token of a secret (so what one sealed, such as the session in a
    ticket, another one can use); another file gives another token, and
    without a file each process has a random key.  All differ from the
    raw value (control: the default provider's extract)."""
    d = os.path.join(work, "seal")
    os.makedirs(d, exist_ok=True)
    cnf1 = sserver.seal_key_cnf(write_key(os.path.join(d, "raw.key"),
                                          os.urandom(32)),
                                os.path.join(d, "raw.cnf"))
    cnf2 = sserver.seal_key_cnf(
        write_key(os.path.join(d, "hex.key"),
                  (os.urandom(32).hex() + "\n").encode()),
        os.path.join(d, "hex.cnf"))
    secret = os.urandom(32)
    raw = extract(sserver.PLAIN_CNF, secret, marked=False)
    a, b, c = extract(cnf1, secret), extract(cnf1, secret), \
        extract(cnf2, secret)
    r1, r2 = extract(None, secret), extract(None, secret)
    print("raw %s\nfile 1: %s, %s\nfile 2: %s\nno file: %s, %s"
          % (raw.hex(), a.hex(), b.hex(), c.hex(), r1.hex(), r2.hex()))
    assert len(raw) == 32
    assert a == b                       # the same file: the same token
    assert len({raw, a, c, r1, r2}) == 5


def test_seal_key_file_refused(work):
    """A seal_key_file that is missing, readable by others or too short
    keeps the provider from starting: fail closed.  (OpenSSL then runs
    with the default provider alone, which `openssl list -providers`
    shows, and a marked call is refused.)  Control: a good file."""
    d = os.path.join(work, "seal-bad")
    os.makedirs(d, exist_ok=True)
    bad = {
        "missing": os.path.join(d, "missing.key"),
        "mode 0644": write_key(os.path.join(d, "open.key"), os.urandom(32),
                               0o644),
        "short": write_key(os.path.join(d, "short.key"), os.urandom(31)),
    }
    secret = os.urandom(32)
    for why, key in sorted(bad.items()) + [("good", None)]:
        key = key or write_key(os.path.join(d, "good.key"), os.urandom(32))
        cnf = sserver.seal_key_cnf(key, os.path.join(d, why + ".cnf"))
        active = sserver.active_providers(True, cnf)
        token = extract(cnf, secret)
        print("%s: active %s, marked extract %s" % (why, active,
                                                     token and token.hex()))
        if why == "good":
            assert active == ["default", "keystore"]
            assert token is not None
        else:
            assert active == ["default"], why
            assert token is None, why


# ---- key exposure ----------------------------------------------------------

def supported_versions():
    return [v for v, why in pm.VERSIONS.items() if why is None]


def _traffic(srv, cert, d):
    """Connections of every client; every supported version, suite and
    group with s_client; resumption.  Returns (key log files, items that
    are not in a key log)."""
    keylogs, extra = [], []

    def kl(name):
        keylogs.append(os.path.join(d, name + ".keys"))
        return keylogs[-1]

    sess = os.path.join(d, "s_client.sess")
    cells = [(v, suite, group) for v in supported_versions()
             for suite in pm.SUITES[v] for group in pm.groups_of(v)
             if group in pm.SUPPORTED_GROUPS]
    for i, (version, suite, group) in enumerate(cells):
        if version == "TLSv1.2" and group != "secp256r1":
            # TLS 1.2: the client must list the curve of the ECDSA key
            # too; the server prefers the first group of its list
            group += ":secp256r1"
        r = tc.s_client_get(srv.port, cert[0], keylog=kl("s_client-%d" % i),
                            version=version, suite=suite, groups=group,
                            sess_out=sess if i == 0 else None)
        assert r.sessions == [(False, version, suite)], r.output[-2000:]
    r = tc.s_client_get(srv.port, cert[0], keylog=kl("s_client-resumed"),
                        sess_in=sess, suite=cells[0][1])
    assert r.sessions[0][0] is True, r.output[-2000:]
    psk = keyscan.session_master_key(mpktls.OPENSSL, sess,
                                     env=sserver.client_env())
    extra.append(keyscan.Item(keyscan.SECRET, "ticket", "s_client's PSK",
                              psk))
    for version in supported_versions():
        py = tc.PythonClient(cert[0], kl("python-" + version), version)
        assert py.get(srv.port).sessions
        assert py.get(srv.port, resume=True).session_reused
        r = tc.curl_get(srv.port, cert[0], count=2, version=version,
                        keylog=kl("curl-" + version))
        assert [s[0] for s in r.sessions] == [False, True], \
            r.output[-2000:]
        r = tc.gnutls_get(srv.port, cert[0], keylog=kl("gnutls-" + version),
                          priority=tc.gnutls_priority(version), resume=True)
        assert r.sessions, r.output[-2000:]
    return keylogs, extra


def run_exposure(provider, cert, d):
    """The scenario of the exposure tests for one server (with or without
    the provider).  Returns a dict with the hits and the figures."""
    t0 = time.monotonic()
    os.makedirs(d)
    versions = supported_versions()
    srv = sserver.SServer(cert[0], cert[1], provider=provider,
                          keylog=os.path.join(d, "server.keys"),
                          version=versions[0] if len(versions) == 1
                          else None,
                          args=["-groups", ":".join(pm.SUPPORTED_GROUPS)])
    srv.start()
    live = None
    try:
        keylogs, extra = _traffic(srv, cert, d)
        # one connection stays open: KeyUpdate (both sides update), then
        # part of a request; the server waits for the rest of the line
        live_log = os.path.join(d, "live.keys")
        live = tc.s_client_interactive(srv.port, cert[0], keylog=live_log,
                                       suite=pm.TLS13_SUITES[-1],
                                       groups=pm.SUPPORTED_GROUPS[0])
        assert live.wait_output(b"Verification: OK", 60) or \
            live.wait_output(b"Verify return code: 0", 60), live.output()
        # K: the client's sending keys change, and so do the server's
        # receiving keys; the server's own KeyUpdate (update_requested)
        # leaves with its next write, after the scan
        live.send("K\n")
        assert live.wait_output(KU_SENT.encode(), 60), live.output()[-3000:]
        live.send("GET")
        assert srv.wait_idle(60), "the server did not read the request"
        t_traffic = time.monotonic() - t0
        with srv.stopped():
            t = time.monotonic()
            mem = keyscan.Memory(srv.pid, read_t=provider)
            t_read = time.monotonic() - t
        live.send(" / HTTP/1.0\r\n\r\n")
        assert live.wait_output(b"Cipher is", 60), live.output()[-3000:]
    finally:
        if live is not None:
            live.close()
        srv.stop()
    t = time.monotonic()
    sessions = keyscan.parse_keylog(*keylogs)
    live_random = next(iter(keyscan.parse_keylog(live_log)))
    sessions.update(keyscan.parse_keylog(live_log))
    items = list(extra)
    for random, secrets in sessions.items():
        items += keyscan.session_items(random, secrets)
    scalar = keyscan.ec_private_scalar(mpktls.OPENSSL, cert[1],
                                       env=sserver.client_env())
    items += [keyscan.Item(keyscan.PRIVATE_KEY, "server", "big-endian",
                           scalar),
              keyscan.Item(keyscan.PRIVATE_KEY, "server",
                           "little-endian (BIGNUM)", scalar[::-1]),
              keyscan.Item(keyscan.PRIVATE_KEY, "server",
                           "the PEM file's first line",
                           keyscan.pem_first_line(cert[1]))]
    hits = keyscan.count_hits(mem.data, items)
    live_items = [i for i in items if i.conn == live_random]
    t_hits = (keyscan.count_hits(mem.t_data, live_items, raw_only=True)
              if provider else [])
    return {
        "mode": "keystore" if provider else "control",
        "connections": len(sessions), "items": len(items),
        "hits": hits, "summary": keyscan.summarize(hits),
        "t_summary": keyscan.summarize(t_hits),
        "live": live_random, "u_bytes": mem.u_bytes, "t_bytes": mem.t_bytes,
        "pkeys": mem.pkeys, "unreadable": mem.unreadable,
        "seconds": {"traffic": t_traffic, "read": t_read,
                    "search": time.monotonic() - t},
        "server_keylog": srv.keylog, "client_sessions": sessions,
    }


def report(e):
    lines = ["%s: %d connections, %d items, U %.1f MiB read, T %.1f MiB "
             "skipped (pkeys %s), unreadable %s; %s"
             % (e["mode"], e["connections"], e["items"],
                e["u_bytes"] / 2**20, e["t_bytes"] / 2**20, e["pkeys"],
                e["unreadable"], ", ".join("%s %.1f s" % kv for kv in
                                           e["seconds"].items())),
             "  hits in U by kind: %s" % e["summary"]]
    if e["mode"] == "keystore":
        lines.append("  (for comparison, hits of the open connection's "
                     "items inside T: %s)" % e["t_summary"])
    for item, enc, n in e["hits"]:
        lines.append("  %-13s %-8s %-55s %s x%d"
                     % (item.kind, item.conn[:8], item.name, enc, n))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def exposure(cert, work):
    runs = {}

    def get(mode):
        if mode not in runs:
            try:
                runs[mode] = run_exposure(
                    mode == "keystore", cert,
                    os.path.join(work, "exposure-" + mode))
            except Exception:           # one run per mode, even failed
                runs[mode] = traceback.format_exc()
        if isinstance(runs[mode], str):
            pytest.fail("the %s run failed:\n%s" % (mode, runs[mode]))
        return runs[mode]

    return get


@pytest.mark.parametrize("mode", pm.exposure_params())
def test_exposure_session_secrets(exposure, mode):
    """No TLS secret and no key derived from one in U with the provider;
    the control finds them (traffic secrets and record keys of the open
    connection at least)."""
    e = exposure(mode)
    print(report(e))
    assert e["connections"] >= 10
    # nothing but the kernel's special mappings was left unread
    assert all(name.startswith("[") for name, _ in e["unreadable"]), \
        e["unreadable"]
    if mode == "keystore":
        assert e["pkeys"] and len(e["pkeys"]) == 1, e["pkeys"]
        # the server's libssl saw every connection, with tokens only
        assert_sealed_sessions(e["server_keylog"], e["client_sessions"])
        leaked = [h for h in e["hits"] if h[0].kind in keyscan.SESSION_KINDS]
        assert leaked == [], report(e)
    else:
        assert e["pkeys"] == []
        live = [h for h in e["hits"] if h[0].conn == e["live"]]
        kinds = {h[0].kind for h in live}
        assert keyscan.SECRET in kinds and keyscan.RECORD_KEY in kinds, \
            "the control did not find the open connection's secrets and " \
            "keys: the scanner is broken\n" + report(e)


@pytest.mark.parametrize("mode", pm.exposure_params())
def test_exposure_public_ivs(exposure, mode):
    """The open connection's static IVs (public by design, derived from
    the same client secrets) are found in U in both runs: the key logs,
    the derivation and the scanner are right for the process scanned."""
    e = exposure(mode)
    ivs = [h for h in e["hits"] if h[0].kind == keyscan.PUBLIC_IV
           and h[0].conn == e["live"]]
    assert ivs, report(e)


@pytest.mark.parametrize("mode", pm.exposure_params())
def test_exposure_server_private_key(exposure, mode):
    """The server's P-256 private key (its scalar, either byte order, as
    hex, and the key file's text): nowhere in U with the provider, where
    s_server loads it as keystore:/path (T reads the file); the control,
    which reads the file itself, holds it."""
    e = exposure(mode)
    found = sum(n for item, _, n in e["hits"]
                if item.kind == keyscan.PRIVATE_KEY)
    print(report(e))
    if mode == "control":
        assert found > 0, report(e)
    else:
        assert found == 0, report(e)
