"""The attack suite: every class of ../shared/notes/pku-attacks.md, and the
attacks only a whole worker offers, run as code inside a real NGINX worker
with keystore on, once with lockdown off (the positive control: the attack
must reach its goal) and once as shipped (it must fail with the expected
errno or signal, T unchanged, and a killed worker must be respawned).

The attacks live in libmpktls-attack.so (attack.h), preloaded into NGINX;
a GET /__attack/NAME on a plain-HTTP server of the same configuration runs
NAME in the worker.  The test, root and outside the worker, plants T's
canary through /proc/PID/mem (which ignores protection keys), hashes T's
heap before and after, and reads the outcome from the file the library
shares.  "off" is the library's own stand-in for ks_lockdown() (nothing
locked down; the module still serves, inspection included).

Some defenses are not lockdown's: the inspector (an unsafe WRPKRU site),
MPK itself (T's code called without the gate) and the gate's checks
(pointers into T, forged handles and tokens).  Those attacks must fail in
both runs; their positive control is the same move where the defense does
not stand in the way (before inspection, through the gate, with U's
pointers, the genuine handle, an output that may be clear).

test_signals_at_start: timer_resolution's SIGALRM while a starting worker
repeats its first gate call; its control installs a handler and unblocks
SIGALRM (the module's order before commit e2387e2): SIGSEGV.

Needs MPK and root: natively on a CPU with pku, else in the QEMU guest
(test_attacks_guest.py).  The table of results is the last case's output
and $BUILD/tests/attack-table.txt.
"""

import ctypes
import errno
import hashlib
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

import guest_suite
import mpktls

guest_suite.skip_without_mpk("test_attacks_guest.py")

LIB = os.path.join(mpktls.BUILD, "tests", "attacks", "libmpktls-attack.so")
KEYSTORE = os.path.join(mpktls.BUILD, "lib", "libkeystore.so")
TABLE = os.path.join(mpktls.BUILD, "tests", "attack-table.txt")
START = 180             # seconds for a worker to be up (TCG is slow)


class Outcome(ctypes.Structure):            # struct lk_outcome
    _fields_ = [("success", ctypes.c_int), ("rc", ctypes.c_long),
                ("err", ctypes.c_int), ("step", ctypes.c_char * 48),
                ("detail", ctypes.c_char * 96), ("aux", ctypes.c_long * 8)]


class Ctx(ctypes.Structure):                # struct lk_ctx
    _fields_ = [("canary", ctypes.c_uint64),
                ("canary_bytes", ctypes.c_ubyte * 32),
                ("canary_page", ctypes.c_uint64),
                ("ks_text_start", ctypes.c_uint64),
                ("ks_text_end", ctypes.c_uint64)]


class Page(ctypes.Structure):               # struct at_page
    _fields_ = [("magic", ctypes.c_uint32), ("pid", ctypes.c_int32),
                ("state", ctypes.c_int32), ("pkey", ctypes.c_int32),
                ("t_start", ctypes.c_uint64 * 8),
                ("t_len", ctypes.c_uint64 * 8),
                ("nranges", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("ctx", Ctx), ("gadget_control", Outcome), ("o", Outcome),
                ("prep", Outcome * 4), ("start_signals", Outcome)]


CANARY_OFFSET = Page.ctx.offset + Ctx.canary_bytes.offset

# What lockdown must make of each attack: an errno (the worker lives on,
# T's heap unchanged) or the signal that ends the worker.
EPERM, EACCES = errno.EPERM, errno.EACCES
SIGSYS, SIGSEGV = signal.SIGSYS, signal.SIGSEGV


def gate_control(page):
    return page.o.aux[0] >= 0


def tokens_control(page):
    return page.o.aux[0] >= 0 and page.o.aux[5] == 1


def internal_control(page):
    return page.o.aux[6] == 0


def site_control(page):
    return page.gadget_control.success == 1


# name: (class, what, expected with lockdown on, control for the defenses
# that are not lockdown's (None: lockdown off is the control), T's heap
# hashed (False where the attack makes real gate calls, which allocate))
ATTACKS = {
    "proc_mem_read": ("1", "/proc/self/mem read of T", EACCES, None, True),
    "vm_readv": ("1", "process_vm_readv(self) of T", EPERM, None, True),
    "vm_writev": ("1", "process_vm_writev(self) into T", EPERM, None, True),
    "proc_mem_code": ("2", "/proc/self/mem write into r-x code", EACCES,
                      None, True),
    "pkey_mprotect": ("3", "pkey_mprotect T page to key 0", EPERM, None,
                      True),
    "mprotect_xonly": ("3", "mprotect T page PROT_EXEC, then RW", EPERM,
                       None, True),
    "mremap": ("3", "mremap T page away, map over it", EPERM, None, True),
    "munmap_remap": ("3", "munmap T page, map over it", EPERM, None, True),
    "map_fixed": ("3", "mmap MAP_FIXED over T page", EPERM, None, True),
    "madvise": ("3", "madvise(MADV_DONTNEED) on T page", EPERM, None, True),
    "userfaultfd": ("3", "userfaultfd", EPERM, None, True),
    "gate_page": ("3", "gate page made writable, PKRU forged", EPERM, None,
                  True),
    "mmap_exec": ("4", "mmap PROT_EXEC: code with WRPKRU", EPERM, None, True),
    "mprotect_exec": ("4", "mprotect PROT_EXEC: code with WRPKRU", EPERM,
                      None, True),
    "code_rw": ("4", "code made writable, WRPKRU written", EPERM, None, True),
    "int80": ("4", "int 0x80 mprotect PROT_EXEC", SIGSYS, None, True),
    "x32": ("4", "x32 syscall", SIGSYS, None, True),
    "sigreturn": ("5", "forged rt_sigreturn frame (PKRU 0)", SIGSYS, None,
                  True),
    "signal_in_t": ("6", "SIGPROF lands in T: T's frame in U", EPERM, None,
                    False),
    "t_internal": ("7", "T's dispatcher called without the gate", SIGSEGV,
                   internal_control, False),
    "seccomp": ("8", "U installs its own seccomp filter", EPERM, None, True),
    "perf": ("9", "perf_event_open sampling T's registers", EPERM, None,
             False),
    "io_uring": ("10", "io_uring setup and enter", EPERM, None, True),
    "fork": ("11", "fork a child process", EPERM, None, True),
    "thread_in_t": ("11", "a thread started with T's PKRU", EPERM, None,
                    False),
    "ip_syscall": ("12", "denied syscall from T's syscall insn", EPERM, None,
                   True),
    "ptrace": ("13", "ptrace from a child forked earlier", EPERM, None,
               True),
    "unsafe_site": ("-", "jump to a WRPKRU inside an instruction", None,
                    site_control, True),
    "gate_t_pointers": ("-", "gate called with pointers into T", 0,
                        gate_control, False),
    "forged_handles": ("-", "forged, confused and stale handles", 0,
                       gate_control, False),
    "forged_tokens": ("-", "clear output from (forged) tokens", 0,
                      tokens_control, False),
}

ROWS = {}                                   # (name, mode): text


def read_page(path):
    with open(path, "rb") as f:
        return Page.from_buffer_copy(f.read(ctypes.sizeof(Page)))


def mem(pid, addr, length=None, data=None):
    """Read or write the worker's memory as root: /proc/PID/mem passes
    over protection keys (the very reason lockdown denies it to U)."""
    with open("/proc/%d/mem" % pid, "r+b" if data else "rb",
              buffering=0) as f:
        f.seek(addr)
        if data:
            f.write(data)
            return None
        return f.read(length)


def heap_hash(pid, page):
    h = hashlib.sha256()
    start, length = page.t_start[0], page.t_len[0]
    for off in range(0, length, 1 << 20):
        h.update(mem(pid, start + off, min(1 << 20, length - off)))
    return h.hexdigest()


def dispatch_offset():
    """ks_dispatch's offset from ks_gate_call, from the file's symbols."""
    out = subprocess.run(["nm", KEYSTORE], capture_output=True, text=True,
                         check=True).stdout
    syms = {m.group(2): int(m.group(1), 16) for m in re.finditer(
        r"^([0-9a-f]+) [tT] (ks_dispatch|ks_gate_call)$", out, re.M)}
    return syms["ks_dispatch"] - syms["ks_gate_call"]


class Target:
    """NGINX with keystore on, one worker, the attack library preloaded;
    main_extra: more of the main context (timer_resolution)."""

    def __init__(self, cert, mode, main_extra=""):
        self.mode = mode
        name = "attacks-%s%s" % (mode, "-timer" if main_extra else "")
        self.work = mpktls.work_dir(name)
        self.file = os.path.join(self.work, "attack.page")
        done = os.path.join(self.work, "done.txt")
        with open(self.file, "wb") as f:
            f.write(bytes(8192))
        with open(done, "w") as f:
            f.write("attack ran\n")
        self.port = mpktls.free_port()
        env = dict(os.environ, LD_PRELOAD=LIB, MPKTLS_ATTACK_FILE=self.file,
                   MPKTLS_ATTACK_MODE=mode, MPKTLS_ATTACK_DONE=done,
                   MPKTLS_ATTACK_DISPATCH=str(dispatch_offset()))
        self.nginx = mpktls.Nginx(
            cert[0], cert[1], keystore=True, status=True, info=True,
            name=name, env=env, main_extra=main_extra, http_extra=(
                "    server {\n"
                "        listen 127.0.0.1:%d;\n"
                "        location /__attack/ { root %s; }\n"
                "    }\n" % (self.port, self.work)))
        self.nginx.start(timeout=START)
        self.worker = None

    def fresh_worker(self):
        """A worker of its own for the next attack: the last one is ended
        (SIGKILL) if it lived; wait for the master's new one, prepared and
        serving TLS."""
        if self.worker is not None and mpktls.alive(self.worker):
            os.kill(self.worker, signal.SIGKILL)
        old = () if self.worker is None else (self.worker,)
        self.worker = self.nginx.wait_workers(1, exclude=old,
                                              timeout=START)[0]
        deadline = time.monotonic() + START
        while read_page(self.file).pid != self.worker:
            assert time.monotonic() < deadline, "worker never prepared"
            time.sleep(0.1)
        st = self.nginx.status(timeout=START)
        assert st["pid"] == self.worker and st["lockdown"] == "on", st
        return self.worker

    def serves_tls(self):
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(self.nginx.url("/info"), context=ctx,
                                    timeout=START) as r:
            return r.status == 200

    def worker_end(self, pid):
        """How pid ended, from the master's log: ('signal', N), ('exit', N)
        or None if it lives."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"process %d exited (on signal (\d+)|with code "
                          r"(\d+))" % pid, self.nginx.error_log())
            if m:
                return (("signal", int(m.group(2))) if m.group(2)
                        else ("exit", int(m.group(3))))
            if mpktls.alive(pid):
                return None
            time.sleep(0.05)
        raise AssertionError("worker %d gone, but not in the log" % pid)

    def attack(self, name):
        """Run attack name in a fresh worker: a dict of what happened."""
        pid = self.fresh_worker()
        page = read_page(self.file)
        canary = os.urandom(32)
        mem(pid, page.ctx.canary, data=canary)
        with open(self.file, "r+b") as f:
            f.seek(CANARY_OFFSET)
            f.write(canary)
        before = heap_hash(pid, page)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/__attack/%s"
                                   % (self.port, name), timeout=START).read()
        except OSError:
            pass                            # the worker may have died
        end = self.worker_end(pid)
        r = {"end": end, "page": read_page(self.file)}
        if end is None:
            r["canary"] = mem(pid, page.ctx.canary, 32) == canary
            r["hash_same"] = heap_hash(pid, page) == before
        return r


@pytest.fixture(scope="module")
def perf_paranoid():
    """perf_event_paranoid 2: a process may sample itself (the worker is
    not root); restored afterwards."""
    path = "/proc/sys/kernel/perf_event_paranoid"
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write("2")
    yield
    with open(path, "w") as f:
        f.write(old)


@pytest.fixture(scope="module")
def targets(perf_paranoid):
    if os.geteuid() != 0:
        pytest.skip("needs root: the test reads the worker's T through "
                    "/proc/PID/mem, and NGINX's workers drop to nobody")
    cert = mpktls.make_cert(mpktls.work_dir("attack-certs"))
    made = {}

    def target(mode, main_extra=""):
        if (mode, main_extra) not in made:
            made[mode, main_extra] = Target(cert, mode, main_extra)
        return made[mode, main_extra]

    yield target
    for t in made.values():
        t.nginx.stop()


GATE_ROWS = ("gate_t_pointers", "forged_handles", "forged_tokens")


def describe(r, name):
    o = r["page"].o
    if name in GATE_ROWS and not o.success and r["end"] is None:
        last = 5 if name == "forged_tokens" else 6
        return "T refused each: %s" % " ".join(str(v)
                                               for v in o.aux[1:last])
    if r["end"] is not None and r["end"][0] == "signal":
        how = "killed by SIG%s" % signal.Signals(r["end"][1]).name[3:]
    elif r["end"] is not None:
        how = "exit %d" % r["end"][1]
    else:
        how = None
    if o.success or (r.get("canary") is False):
        text = o.detail.decode() or "T's canary changed"
        if r.get("canary") is False and "canary" not in text:
            text += "; T's canary changed"
    else:
        text = "%s: %s" % (o.step.decode(), errno.errorcode.get(o.err, "ok")
                           if o.err else "no error")
    if how:
        text = how if not o.success else "%s (then %s)" % (text, how)
    if r.get("hash_same") is False:
        text += "; T's heap changed"
    return text


@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack(targets, name, mode):
    cls, what, expected, control, hashed = ATTACKS[name]
    t = targets(mode)
    r = t.attack(name)
    o = r["page"].o
    ROWS[name, mode] = describe(r, name)
    got_t = o.success == 1 or r.get("canary") is False
    if control is not None:
        # a defense that is not lockdown's: fails in both runs; the control
        # is the same move where the defense does not stand
        assert control(r["page"]), ROWS[name, mode]
        if mode == "off":
            ROWS[name, mode] = "control: " + control_text(name, r["page"])
    elif mode == "off":
        assert got_t, "the positive control failed: %s %s\n%s" % (
            ROWS[name, mode], list(o.aux), t.nginx.error_log()[-1500:])
        return
    assert not got_t, ROWS[name, mode]
    if isinstance(expected, signal.Signals):
        assert r["end"] == ("signal", expected), ROWS[name, mode]
        # the master respawns the worker, locked down, serving TLS
        t.fresh_worker()
        assert t.serves_tls()
        return
    if expected is None:                    # any signal: the site is gone
        assert r["end"] is not None and r["end"][0] == "signal", \
            ROWS[name, mode]
        t.fresh_worker()
        return
    assert r["end"] is None, ROWS[name, mode]
    assert o.err == expected, ROWS[name, mode]
    assert r["canary"], ROWS[name, mode]
    if hashed:
        assert r["hash_same"], ROWS[name, mode]


def control_text(name, page):
    o, g = page.o, page.gadget_control
    if name == "unsafe_site":
        return "%s (before inspection)" % g.detail.decode()
    if name == "t_internal":
        return "KS_OP_STATS through the gate: %d; without: as on" % o.aux[6]
    if name == "forged_tokens":
        return "clear TLS 1.3 IV from a token: %d; the rest as on" % o.aux[0]
    return "the same call done right: %d; the forged ones as on" % o.aux[0]


def test_unsafe_site_control_read_t(targets):
    """The unsafe-site control really read T: the bytes it got are T's
    (checked from outside) and the worker that did it then served."""
    t = targets("on")
    pid = t.fresh_worker()
    g = read_page(t.file).gadget_control
    got = bytes(ctypes.string_at(ctypes.addressof(g.aux) + 16, 32))
    assert g.success == 1 and any(got), g.detail
    assert mem(pid, g.aux[1], 32) == got


# rows of the table that are not attacks run through /__attack/
EXTRA = {"signals_at_start": ("-", "SIGALRM each ms while a worker starts")}


@pytest.mark.parametrize("mode", ["off", "on"])
def test_signals_at_start(targets, mode):
    """A worker with timer_resolution 1ms repeats its first gate call for
    2 s (at_signals_at_start): as shipped its signals are already blocked,
    SIGALRM stays pending for the signalfd and the worker serves; the
    control installs a SIGALRM handler and unblocks SIGALRM first (the
    order before commit e2387e2), and the worker dies of SIGSEGV: the
    handler's frame went on T's stack, with U's PKRU."""
    t = targets(mode, "timer_resolution 1ms;\n")
    if mode == "off":
        deadline = time.monotonic() + START
        while True:
            m = re.search(r"process \d+ exited on signal (\d+)",
                          t.nginx.error_log())
            if m or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        o = read_page(t.file).start_signals
        ROWS["signals_at_start", mode] = (
            "SIGALRM handler, unblocked: killed by SIG%s"
            % signal.Signals(int(m.group(1))).name[3:] if m else
            "the worker lived: %s" % o.detail.decode())
        assert m and int(m.group(1)) == signal.SIGSEGV, \
            "the positive control failed: " + ROWS["signals_at_start", mode]
        assert o.aux[4] == 1 and o.aux[0] == 0 and o.aux[5] == 0, list(o.aux)
        t.nginx.stop()                      # its workers die as they start
        return
    pid = t.fresh_worker()
    o = read_page(t.file).start_signals
    ROWS["signals_at_start", mode] = "lived: " + o.detail.decode()
    assert o.aux[5] == 1 and o.aux[0] == 1, ROWS["signals_at_start", mode]
    assert o.aux[1] > 0 and o.aux[2] == 1 and o.aux[3] == 0, list(o.aux)
    assert t.serves_tls()
    st = t.nginx.status(timeout=START)
    assert st["pid"] == pid and st["signals"] > 0, st
    assert "exited on signal" not in t.nginx.error_log()


def test_zz_table():
    """The table of classes and results (printed; also in TABLE)."""
    lines = ["%-3s %-42s %-60s %s" % ("#", "attack (pku-attacks.md class)",
                                      "lockdown off (the control)",
                                      "lockdown on")]
    for name, (cls, what, *_rest) in [*ATTACKS.items(), *EXTRA.items()]:
        lines.append("%-3s %-42s %-60s %s" % (
            cls, what, ROWS.get((name, "off"), "not run")[:60],
            ROWS.get((name, "on"), "not run")))
    text = "\n".join(lines)
    print(text)
    try:
        with open(TABLE, "w") as f:
            f.write(text + "\n")
    except OSError:
        pass                                # the guest's tree: the wrapper
    assert ROWS, "no attack ran"
