"""The key-exposure scanner: what a client knows about a TLS session, and
where those bytes are in a server process's memory.

- parse_keylog(): NSS key log files (Python ssl keylog_filename, s_client
  -keylogfile, SSLKEYLOGFILE of curl and gnutls-cli), grouped by client
  random.
- session_items(): from one connection's logged secrets, everything a
  server must not leave in U: the secrets themselves, the record keys and
  Finished keys derived from them (RFC 8446 7.1/7.3, HKDF written here
  with hmac and hashlib) and the next generations of the application
  traffic secrets (KeyUpdate), plus the static IVs, which are public by
  design and serve as a positive control inside the same process.  TLS
  1.2: the master secret (CLIENT_RANDOM) only.
- session_master_key(): the PSK of an s_client session file (tickets).
- ec_private_scalar(): the raw private key of a PEM EC key.
- Memory: reads a process's memory from outside (/proc/PID/mem), skipping
  only the mappings whose ProtectionKey in /proc/PID/smaps is not 0 (the
  keystore's, T); count_hits() counts where each item occurs, raw and (for
  secrets and private keys) as key-log hex.

The process must be stopped while it is read (Stopped(), SIGSTOP/SIGCONT),
so that the scan sees one consistent state.
"""

import binascii
import hashlib
import hmac
import os
import re
import signal
import subprocess
import time

HASHES = {32: hashlib.sha256, 48: hashlib.sha384}

# RFC 8446 7.3: key lengths by hash of the TLS 1.3 suites we test (a
# 32-byte secret is SHA-256: AES-128-GCM or ChaCha20-Poly1305; a 48-byte
# secret is SHA-384: AES-256-GCM).  Both lengths are tried where the suite
# is not known; the wrong one is just a random value that never occurs.
KEY_LENGTHS = {32: (16, 32), 48: (32,)}
IV_LENGTH = 12

TRAFFIC_SECRETS = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                   "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                   "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                   "CLIENT_EARLY_TRAFFIC_SECRET")
HANDSHAKE_SECRETS = TRAFFIC_SECRETS[:2]
APP_SECRETS = TRAFFIC_SECRETS[2:4]
KEY_UPDATE_GENERATIONS = 4     # TS_1 .. TS_4 of each direction


# ---- HKDF (RFC 5869) and the TLS 1.3 key schedule (RFC 8446 7.1) --------

def hkdf_expand(hash_fn, prk, info, length):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hash_fn).digest()
        out += block
        i += 1
    return out[:length]


def hkdf_expand_label(secret, label, context, length):
    """HKDF-Expand-Label(Secret, Label, Context, Length); the hash is the
    one whose output length is len(secret)."""
    full = b"tls13 " + label.encode()
    info = (length.to_bytes(2, "big") + bytes([len(full)]) + full
            + bytes([len(context)]) + context)
    return hkdf_expand(HASHES[len(secret)], secret, info, length)


# ---- key logs ------------------------------------------------------------

def parse_keylog(*paths):
    """{client_random_hex: {label: secret_bytes}} from NSS key log files
    (missing files are skipped).  The KeyUpdate secrets OpenSSL logs as
    *_TRAFFIC_SECRET_N become *_TRAFFIC_SECRET_N0, _N1, ... in order."""
    sessions = {}
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) != 3 or line.startswith("#"):
                continue
            label, random, secret = parts
            conn = sessions.setdefault(random.lower(), {})
            if label.endswith("_TRAFFIC_SECRET_N"):
                # OpenSSL logs each KeyUpdate's secret under this label
                label = label[:-1] + "N%d" % sum(
                    1 for k in conn if k.startswith(label[:-1]))
            conn[label] = binascii.unhexlify(secret)
    return sessions


class Item:
    """One value to look for: what it is (kind), which connection it
    belongs to (client random), its name and its bytes."""

    def __init__(self, kind, conn, name, value):
        self.kind, self.conn, self.name, self.value = kind, conn, name, value

    def __repr__(self):
        return "Item(%s %s %s)" % (self.kind, self.conn[:16], self.name)


# kinds: what must not be in U ...
SECRET = "secret"               # logged secrets, KeyUpdate generations, PSKs
RECORD_KEY = "record-key"       # HKDF-Expand-Label(TS, "key")
FINISHED_KEY = "finished-key"   # HKDF-Expand-Label(HS TS, "finished")
PRIVATE_KEY = "private-key"     # the server's long-term key
# ... and what is public by design (the positive control in the process)
PUBLIC_IV = "public-iv"         # HKDF-Expand-Label(TS, "iv")

SESSION_KINDS = (SECRET, RECORD_KEY, FINISHED_KEY)


def session_items(conn, secrets):
    """Items of one connection from its logged secrets: TLS 1.3 (secrets,
    derived keys, KeyUpdate generations) or TLS 1.2 (CLIENT_RANDOM, the
    master secret; its key block needs the server random, which the log
    does not have)."""
    items = []
    for label, secret in sorted(secrets.items()):
        if len(secret) not in HASHES:
            continue
        items.append(Item(SECRET, conn, label, secret))
        if label not in TRAFFIC_SECRETS:
            continue                # EXPORTER_SECRET, EARLY_EXPORTER_...
        generations = [(label, secret)]
        if label in APP_SECRETS:
            ts = secret
            for n in range(1, KEY_UPDATE_GENERATIONS + 1):
                ts = hkdf_expand_label(ts, "traffic upd", b"", len(ts))
                name = label[:-1] + str(n)
                generations.append((name, ts))
                items.append(Item(SECRET, conn, name, ts))
        for name, ts in generations:
            for klen in KEY_LENGTHS[len(ts)]:
                items.append(Item(RECORD_KEY, conn, "%s key%d"
                                  % (name, klen * 8),
                                  hkdf_expand_label(ts, "key", b"", klen)))
            items.append(Item(PUBLIC_IV, conn, name + " iv",
                              hkdf_expand_label(ts, "iv", b"", IV_LENGTH)))
        if label in HANDSHAKE_SECRETS:
            items.append(Item(FINISHED_KEY, conn, label + " finished",
                              hkdf_expand_label(secret, "finished", b"",
                                                len(secret))))
    return items


def session_master_key(openssl, sess_file, env=None):
    """The Master-Key of a session file written by s_client -sess_out: in
    TLS 1.3 the ticket's PSK (RFC 8446 4.6.1), which the client knows."""
    out = subprocess.run([openssl, "sess_id", "-in", sess_file, "-noout",
                          "-text"], capture_output=True, text=True,
                         check=True, env=env).stdout
    m = re.search(r"(?:Master-Key|Resumption PSK):\s*([0-9A-Fa-f]+)", out)
    return binascii.unhexlify(m.group(1)) if m else None


def pem_first_line(key_file):
    """The first base64 line of a PEM file's body: it holds the start of
    a PKCS#8 EC key's scalar, so it is in a process only where the file's
    text was read."""
    with open(key_file, "rb") as f:
        lines = [l.strip() for l in f if l.strip()]
    return next(l for l in lines if not l.startswith(b"-----"))


def ec_private_scalar(openssl, key_file, env=None):
    """The private scalar of an EC key file, as the big-endian bytes of the
    curve's size (32 for P-256)."""
    out = subprocess.run([openssl, "pkey", "-in", key_file, "-noout",
                          "-text"], capture_output=True, text=True,
                         check=True, env=env).stdout
    m = re.search(r"priv:\s*\n((?:\s+[0-9a-f:]+\n)+)", out)
    value = binascii.unhexlify(re.sub(r"[\s:]", "", m.group(1)))
    m = re.search(r"\((\d+) bit", out)
    size = (int(m.group(1)) + 7) // 8
    return value.lstrip(b"\0").rjust(size, b"\0")


# ---- the process -------------------------------------------------------

def mappings(pid):
    """[(start, end, perms, path, pkey, rss_kib)] from /proc/PID/smaps."""
    out = []
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = head.match(line)
            if m:
                cur = {"start": int(m.group(1), 16),
                       "end": int(m.group(2), 16), "perms": m.group(3),
                       "path": m.group(4), "pkey": 0, "rss": 0}
                out.append(cur)
            elif line.startswith("ProtectionKey:"):
                cur["pkey"] = int(line.split()[1])
            elif line.startswith("Rss:"):
                cur["rss"] = int(line.split()[1])
    return out


def process_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class Stopped:
    """with Stopped(pid): the process is in state T (SIGSTOP) inside."""

    def __init__(self, pid, timeout=10):
        self.pid, self.timeout = pid, timeout

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        deadline = time.monotonic() + self.timeout
        while process_state(self.pid) not in ("T", "t"):
            if time.monotonic() > deadline:
                raise RuntimeError("process %d did not stop" % self.pid)
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


class Memory:
    """The U-readable memory of a process, read from outside.

    data: the readable mappings outside T, concatenated (address order,
    a gap of 64 zero bytes between mappings that do not touch);
    t_mappings: the mappings skipped because their pkey is not 0;
    t_data: their contents (read the same way: /proc/PID/mem ignores
    protection keys), only for the report; unreadable: the mappings the
    kernel refused to read (only special ones: [vvar] and the like)."""

    def __init__(self, pid, read_t=True):
        self.pid = pid
        self.maps = mappings(pid)
        self.t_mappings = [m for m in self.maps if m["pkey"] != 0]
        self.pkeys = sorted({m["pkey"] for m in self.t_mappings})
        self.unreadable = []
        chunks, t_chunks = [], []
        self.u_bytes = 0
        prev_end = None
        fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
        try:
            for m in self.maps:
                if m["path"] == "[vsyscall]":
                    continue
                in_t = m["pkey"] != 0
                if in_t and not read_t:
                    continue
                try:
                    data = self._read(fd, m["start"], m["end"])
                except OSError as e:
                    self.unreadable.append((m["path"] or hex(m["start"]),
                                            e.strerror))
                    continue
                if in_t:
                    t_chunks.append(data + b"\0" * 64)
                    continue
                if prev_end is not None and prev_end != m["start"]:
                    chunks.append(b"\0" * 64)
                chunks.append(data)
                self.u_bytes += len(data)
                prev_end = m["end"]
        finally:
            os.close(fd)
        self.data = b"".join(chunks)
        self.t_data = b"".join(t_chunks)
        self.t_bytes = sum(m["end"] - m["start"] for m in self.t_mappings)

    @staticmethod
    def _read(fd, start, end):
        parts = []
        pos = start
        while pos < end:
            n = min(end - pos, 1 << 22)
            chunk = os.pread(fd, n, pos)
            if not chunk:
                raise OSError(0, "short read")
            parts.append(chunk)
            pos += len(chunk)
        return b"".join(parts)


def encodings(item):
    """The forms an item is looked for in: the raw bytes, and for secrets
    also the key log's hex text (lower and upper case)."""
    forms = [("raw", item.value)]
    if item.kind in (SECRET, PRIVATE_KEY):
        h = binascii.hexlify(item.value)
        forms += [("hex", h), ("HEX", h.upper())]
    return forms


def count_hits(data, items, raw_only=False):
    """[(item, encoding, count)] for every item with count > 0."""
    hits = []
    for item in items:
        for enc, pattern in encodings(item)[:1 if raw_only else None]:
            n = data.count(pattern)
            if n:
                hits.append((item, enc, n))
    return hits


def summarize(hits):
    """{kind: total count}."""
    out = {}
    for item, _, n in hits:
        out[item.kind] = out.get(item.kind, 0) + n
    return out
