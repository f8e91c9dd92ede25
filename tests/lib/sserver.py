"""`openssl s_server` (build/bin/openssl) with or without the keystore
provider, on a free loopback port.

With provider=True the server runs with openssl-patch/keystore-openssl.cnf
and OPENSSL_MODULES=build/lib/ossl-modules; with provider=False, the
control, with tests/lib/openssl-default.cnf (the same without the
keystore).  Since OpenSSL treats a provider that fails to activate from a
configuration file as non-fatal, start() checks that the keystore is
really there: a provider server must have mappings with a protection key
(the keystore's T), a control server none.

A provider server loads its private key through the provider's OSSL_STORE
loader (`-key keystore:/path/key.pem`: s_server's load_key() opens any
URI with OSSL_STORE_open_ex), so T reads and decodes the file itself and
the key never exists in s_server's own memory; the control loads the
file in U, as usual.

Clients get client_env(): the default provider only, never the keystore.
"""

import os
import re
import signal
import subprocess
import time

import captured
import keyscan
import mpktls

KEYSTORE_CNF = os.path.join(mpktls.ROOT, "openssl-patch",
                            "keystore-openssl.cnf")
PLAIN_CNF = os.path.join(mpktls.ROOT, "tests", "lib", "openssl-default.cnf")
MODULES_DIR = os.path.join(mpktls.BUILD, "lib", "ossl-modules")
MODULE = os.path.join(MODULES_DIR, "keystore.so")

VERSION_FLAGS = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2"}

_CLEAN = ("OPENSSL_CONF", "OPENSSL_MODULES", "SSLKEYLOGFILE",
          "OPENSSL_ia32cap")


def _base_env():
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    return env


def server_env(provider, cnf=None):
    """The environment of a server; cnf: another configuration file (one
    of seal_key_cnf()'s) in place of the provider's or the control's."""
    env = _base_env()
    if provider:
        env["OPENSSL_CONF"] = KEYSTORE_CNF
        env["OPENSSL_MODULES"] = MODULES_DIR
    else:
        env["OPENSSL_CONF"] = PLAIN_CNF
    if cnf is not None:
        env["OPENSSL_CONF"] = cnf
    return env


def seal_key_cnf(key_file, path):
    """Writes to path the provider's configuration with `seal_key_file =
    key_file` in the keystore's section (the sealing key T reads at the
    provider's start); returns path."""
    with open(KEYSTORE_CNF) as f:
        text = f.read()
    section = "[mpktls_keystore]\n"
    assert section in text
    with open(path, "w") as f:
        f.write(text.replace(section, section + "seal_key_file = %s\n"
                             % key_file))
    return path


def client_env(**extra):
    env = _base_env()
    env["OPENSSL_CONF"] = PLAIN_CNF
    env.update(extra)
    return env


def active_providers(provider, cnf=None):
    """Names of the active providers `openssl list -providers` reports in
    the server's environment."""
    out = subprocess.run([mpktls.OPENSSL, "list", "-providers"],
                         env=server_env(provider, cnf), capture_output=True,
                         text=True, timeout=120).stdout
    names, current = [], None
    for line in out.splitlines():
        m = re.match(r"^  (\S+)$", line)
        if m:
            current = m.group(1)
        elif "status: active" in line and current:
            names.append(current)
    return names


class SServer:
    """One s_server process.  www=True serves `-www` (each GET gets the
    status page: protocol, cipher, "New"/"Reused"); www=False is the
    interactive mode, whose stdin takes lines to send and the commands
    `k`/`K` (KeyUpdate), and whose stdout shows what the client sent.

    version: the only protocol version served ("TLSv1.3", "TLSv1.2"; None
    for OpenSSL's default range).  args: more s_server options
    (-ciphersuites, -groups, -msg, ...).  key_in_t: load the key through
    the keystore: store (default: with the provider)."""

    def __init__(self, cert, key, provider=True, args=(), www=True,
                 keylog=None, version="TLSv1.3", key_in_t=None):
        self.cert, self.key = cert, key
        self.provider = provider
        self.key_in_t = provider if key_in_t is None else key_in_t
        self.args = list(args)
        self.www = www
        self.keylog = keylog
        self.version = version
        self.proc = None
        self.port = None
        self._io = None                     # captured.Captured

    def argv(self):
        # stdbuf: s_server's own messages (-msg, ACCEPT) go through stdio,
        # which a pipe would buffer; the client's data is written directly
        key = ("keystore:" + os.path.abspath(self.key) if self.key_in_t
               else self.key)
        a = ["stdbuf", "-oL", mpktls.OPENSSL, "s_server", "-accept",
             "127.0.0.1:%d" % self.port, "-cert", self.cert, "-key", key]
        if self.version:
            a.append(VERSION_FLAGS[self.version])
        if self.www:
            a.append("-www")
        if self.keylog:
            a += ["-keylogfile", self.keylog]
        return a + self.args

    def start(self, timeout=60, attempts=5):
        for _ in range(attempts):
            self.port = mpktls.free_port()
            self.proc = subprocess.Popen(
                self.argv(), env=server_env(self.provider),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
            self._io = captured.Captured(self.proc)
            if self.wait_output(b"ACCEPT\n", timeout, need_alive=True):
                self._check_keystore()
                return self
            text = self.output()
            self.stop()
            if "Address already in use" not in text:
                raise RuntimeError("s_server did not start:\n" + text)
        raise RuntimeError("s_server: no free port after %d attempts"
                           % attempts)

    def _check_keystore(self):
        pkeys = {m["pkey"] for m in keyscan.mappings(self.pid)} - {0}
        if self.provider and not pkeys:
            self.stop()
            raise RuntimeError(
                "s_server runs without the keystore: no mapping has a "
                "protection key (the provider failed to activate; "
                "`openssl list -providers` in its environment shows "
                "%s)" % active_providers(True))
        if not self.provider and pkeys:
            self.stop()
            raise RuntimeError("the control s_server has protection keys %s"
                               % sorted(pkeys))

    @property
    def pid(self):
        return self.proc.pid

    def output(self, since=0):
        return self._io.output(since)

    def mark(self):
        """An offset into the output, for output(since=...)."""
        return self._io.mark()

    def wait_output(self, needle, timeout=30, since=0, need_alive=False,
                    count=1):
        """Wait until needle (bytes) shows count times in the output after
        since; False after the timeout (or, with need_alive, the exit)."""
        return self._io.wait_output(needle, timeout, since, need_alive,
                                    count)

    def wait_idle(self, timeout=30):
        """Wait until the server has read everything its clients sent (no
        established connection to its port has bytes queued) and sleeps:
        True, or False after the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (keyscan.process_state(self.pid) == "S"
                    and not any(q for q in self._rx_queues())):
                return True
            time.sleep(0.05)
        return False

    def _rx_queues(self):
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                port = int(fields[1].split(":")[1], 16)
                if port == self.port and fields[3] == "01":  # ESTABLISHED
                    yield int(fields[4].split(":")[1], 16)

    def send(self, text):
        """Write to the server's stdin (interactive mode)."""
        self._io.send(text)

    def stopped(self):
        """with server.stopped(): SIGSTOP, and SIGCONT at the end."""
        return keyscan.Stopped(self.pid)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._io is not None:
            self._io.join()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
