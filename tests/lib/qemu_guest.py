"""Run tests inside a QEMU guest whose emulated CPU has protection keys
(TCG, `-cpu max`), for machines whose own CPU has none.

The guest is the Debian kernel configure extracted (build/qemu/vmlinuz)
with an initramfs made here; tests/qemu/guest_init is its /init.
Emulation makes MPK behave as on hardware (faults, SEGV_PKUERR, PKRU); it
says nothing about speed.

run(build, programs): the initramfs holds each test program with the
shared libraries it needs at the same paths; one boot runs them all.

run_command(build, argv, ...): whole scenarios (servers, clients, pytest).
The guest mounts the host's root file system read-only over virtio-9p,
chroots into it and runs argv as root at the same cwd, so every program
and library of the host is there at its path.  Writes go to tmpfs: /run,
/dev/shm, and overlays (upper layer in guest memory) on /tmp, /var/tmp,
/root and build/tests; the repository and the build directory stay
read-only even where they lie under one of those.  Nothing the guest does
reaches the host, except through `outdir`, a writable 9p share of one
host directory at its own path.  The guest has only loopback (127.0.0.1,
::1).  The 9p and overlay modules come from build/qemu/modules (configure
keeps them from the kernel package).
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

KERNEL_REL = os.path.join("qemu", "vmlinuz")
INIT_REL = os.path.join("tests", "qemu", "guest_init")
MODULES_REL = os.path.join("qemu", "modules")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def available(build):
    """The kernel and /init if both exist, else None."""
    kernel = os.path.join(build, KERNEL_REL)
    init = os.path.join(build, INIT_REL)
    if os.path.exists(kernel) and os.path.exists(init):
        return kernel, init
    return None


class Cpio:
    """A newc ("070701") archive, written by hand: directories, regular
    files and character devices are all the guest needs."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, int(time.time()), len(data),
                  0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def directory(self, path):
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.directory(os.path.dirname(path))
        self.dirs.add(path)
        self._entry(path, stat.S_IFDIR | 0o755)

    def file(self, path, data, mode=0o755):
        self.directory(os.path.dirname(path))
        self._entry(path.strip("/"), stat.S_IFREG | mode, data)

    def chardev(self, path, major, minor):
        self.directory(os.path.dirname(path))
        self._entry(path.strip("/"), stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def shared_libraries(program):
    """Absolute paths of the libraries (and loader) ldd lists."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True)
    paths = []
    for line in out.stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            paths.append(m.group(1))
    return paths


def add_with_links(archive, path):
    """Add path; for a symlink, add its target under the link's name."""
    with open(path, "rb") as f:
        archive.file(path, f.read())
    real = os.path.realpath(path)
    if real != path:
        with open(real, "rb") as f:
            archive.file(real, f.read())


def run(build, programs, timeout=600):
    """Boot once and run programs; returns {program: (output, status)}
    with each program's console output and its wait status (-1 if it never
    finished), and the whole console log under the key None."""
    kernel, init = available(build)
    archive = Cpio()
    with open(init, "rb") as f:
        archive.file("/init", f.read())
    archive.chardev("/dev/console", 5, 1)
    archive.chardev("/dev/null", 1, 3)
    for d in ("/proc", "/sys", "/tmp"):
        archive.directory(d)
    added = set()
    for program in programs:
        for path in [program] + shared_libraries(program):
            if path not in added:
                add_with_links(archive, path)
                added.add(path)
    archive.file("/mpktls-tests", "".join(p + "\n" for p in programs).encode(),
                 0o644)

    with tempfile.NamedTemporaryFile(suffix=".cpio") as initrd:
        initrd.write(archive.finish())
        initrd.flush()
        proc = subprocess.run(
            ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max",
             "-m", "1024", "-smp", "2", "-nographic", "-no-reboot",
             "-kernel", kernel, "-initrd", initrd.name,
             "-append", "console=ttyS0 panic=-1 quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, timeout=timeout)
    log = proc.stdout.decode(errors="replace").replace("\r\n", "\n")

    results = {None: (log, proc.returncode)}
    for program in programs:
        m = re.search(r"@@MPKTLS-BEGIN %s\n(.*?)@@MPKTLS-END %s status=(-?\d+)"
                      % (re.escape(program), re.escape(program)), log, re.S)
        results[program] = (m.group(1), int(m.group(2))) if m else ("", -1)
    return results


# ---- whole scenarios: the host's root over 9p ---------------------------

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000

NINEP = "trans=virtio,version=9p2000.L,msize=512000"
DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# host directories the guest sees with an overlay: writable, in guest RAM
OVERLAYS = ("/tmp", "/var/tmp", "/root")


class GuestError(RuntimeError):
    """The guest could not run the command (boot, module, mount)."""


class GuestResult(tuple):
    """(status, output) of a command run in the guest, plus attributes.

    status is like subprocess's returncode (the exit code, or -N after
    signal N), or None if the command did not finish in time; output is
    its stdout and stderr together.  Attributes: status, output, console
    (the guest's console log), timed_out, boot_seconds (QEMU start to the
    command's start, host clock), command_seconds (the command, until it
    and everything it left running ended), total_seconds (the whole QEMU
    run), junit (run_pytest: the JUnit XML text, or None)."""

    def __new__(cls, status, output, **attrs):
        self = tuple.__new__(cls, (status, output))
        self.__dict__.update(attrs)
        return self

    @property
    def status(self):
        return self[0]

    @property
    def output(self):
        return self[1]


def command_unavailable(build):
    """None if run_command can work here, else the reason it cannot."""
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    if available(build) is None:
        return ("no guest kernel or /init in %s (./configure fetches the "
                "kernel, make builds guest_init)" % build)
    if not os.path.exists(os.path.join(build, MODULES_REL, "order")):
        return ("no guest kernel modules in %s (re-run ./configure)"
                % os.path.join(build, MODULES_REL))
    return None


def cpu_has_pku():
    """Whether this CPU (and kernel) has protection keys."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split()
                return "pku" in flags and "ospke" in flags
    return False


def _under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _depth(path):
    return len([c for c in path.split("/") if c])


def _script(build, argv, env, cwd, timeout, outdir, writable):
    """The words of guest_init's command script."""
    words = []

    def op(*args):
        words.extend(str(a) for a in args)

    with open(os.path.join(build, MODULES_REL, "order")) as f:
        for name in f.read().split():
            op("insmod", "/modules/%s.ko" % name)
    op("mount", "hostroot", "/host", "9p", MS_RDONLY, NINEP + ",cache=loose")
    # the host's root as it is, for overlay lower layers and read-only
    # binds (a bind without MS_REC: nothing mounted later shows there)
    op("mkdir", "/lower", -1, -1, -1)
    op("mount", "/host", "/lower", "", MS_BIND, "")
    op("mount", "ctl", "/ctl", "9p", 0, NINEP + ",cache=mmap")
    op("mkdir", "/rw", -1, -1, -1)
    op("mount", "rw", "/rw", "tmpfs", 0, "mode=0700")

    mounts = []     # (target, words), mounted shallowest first
    mounts.append(("/proc", ["proc", "proc", MS_NOSUID | MS_NODEV
                             | MS_NOEXEC, ""]))
    mounts.append(("/sys", ["sysfs", "sysfs", MS_NOSUID | MS_NODEV
                            | MS_NOEXEC, ""]))
    mounts.append(("/dev", ["devtmpfs", "devtmpfs", MS_NOSUID, ""]))
    mounts.append(("/dev/pts", ["devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                                "gid=5,mode=620,ptmxmode=666"]))
    mounts.append(("/dev/shm", ["shm", "tmpfs", MS_NOSUID | MS_NODEV,
                                "mode=1777"]))
    mounts.append(("/run", ["run", "tmpfs", MS_NOSUID | MS_NODEV,
                            "mode=0755"]))
    overlays = []
    for path in list(OVERLAYS) + [os.path.realpath(w) for w in writable]:
        if os.path.isdir(path) and path not in overlays:
            if "," in path or ":" in path:
                raise ValueError("cannot overlay a path with ',' or ':': %s"
                                 % path)
            overlays.append(path)
    for i, path in enumerate(overlays):
        st = os.stat(path)      # the merged root takes the upper's mode
        op("mkdir", "/rw/%d/upper" % i, "%o" % stat.S_IMODE(st.st_mode),
           st.st_uid, st.st_gid)
        op("mkdir", "/rw/%d/work" % i, -1, -1, -1)
        mounts.append((path, ["overlay", "overlay", 0,
                              "lowerdir=/lower%s,upperdir=/rw/%d/upper,"
                              "workdir=/rw/%d/work" % (path, i, i)]))
    # the repository and the build stay read-only under an overlay
    for path in {ROOT, os.path.realpath(build)}:
        if any(_under(path, o) and path != o for o in overlays):
            mounts.append((path, ["/lower" + path, "", MS_BIND, ""]))
    if outdir is not None:
        mounts.append((os.path.realpath(outdir),
                       ["out", "9p", 0, NINEP + ",cache=mmap"]))
    for target, (src, fstype, flags, data) in sorted(
            mounts, key=lambda m: _depth(m[0])):
        if target in ("/dev/pts", "/dev/shm"):
            op("mkdir", "/host" + target, -1, -1, -1)
        op("mount", src, "/host" + target, fstype, flags, data)
    op("lo")

    op("output", "/ctl/output", "root", "/host", "cwd", cwd,
       "timeout", int(timeout))
    for k, v in env.items():
        op("env", "%s=%s" % (k, v))
    for a in argv:
        op("arg", a)
    op("run")
    for w in words:
        if "\0" in w:
            raise ValueError("NUL in a guest argument: %r" % w)
    return "".join(w + "\0" for w in words).encode()


def run_command(build, argv, env=None, cwd=None, timeout=600, outdir=None,
                writable=(), memory=2048, cpus=2, forward=(), follow=None):
    """Boot a guest with the host's root and run argv in it, as root, at
    cwd (default: the current directory).  Returns a GuestResult, which
    unpacks as (status, output).

    env is added to DEFAULT_ENV (the guest gets nothing else from ours).
    outdir, a host directory, is shared writable at its own path: what the
    command writes there is on the host afterwards.  writable names more
    host directories that get an overlay like build/tests.  The command
    gets timeout seconds; then it is killed (status None).  Raises
    GuestError if the guest could not start the command.

    forward: (host_port, guest_port) pairs; the guest then has a network
    card (QEMU user networking, address GUEST_ADDR once the command brings
    eth0 up: GUEST_NET_UP) and 127.0.0.1:host_port on the host reaches
    guest_port there.  follow: a binary file that gets the command's output
    while it runs (e.g. sys.stdout.buffer), not only at the end."""
    reason = command_unavailable(build)
    if reason is not None:
        raise GuestError(reason)
    build = os.path.abspath(build)
    kernel, init = available(build)
    cwd = os.path.abspath(cwd or os.getcwd())
    guest_env = dict(DEFAULT_ENV, **(env or {}))
    tests_dir = os.path.join(build, "tests")
    writable = [tests_dir] + [w for w in writable if w != tests_dir]
    for w in writable:
        if not os.path.isdir(w):
            raise ValueError("not a directory: %s" % w)
    if outdir is not None and not os.path.isdir(outdir):
        raise ValueError("outdir is not a directory: %s" % outdir)

    archive = Cpio()
    with open(init, "rb") as f:
        archive.file("/init", f.read())
    archive.chardev("/dev/console", 5, 1)
    archive.chardev("/dev/null", 1, 3)
    for d in ("/proc", "/sys", "/host", "/ctl"):
        archive.directory(d)
    with open(os.path.join(build, MODULES_REL, "order")) as f:
        for name in f.read().split():
            with open(os.path.join(build, MODULES_REL, name + ".ko"),
                      "rb") as ko:
                archive.file("/modules/%s.ko" % name, ko.read(), 0o644)
    archive.file("/mpktls-command",
                 _script(build, argv, guest_env, cwd, timeout, outdir,
                         writable), 0o644)

    ctl = tempfile.mkdtemp(prefix="mpktls-guest-")
    try:
        initrd = os.path.join(ctl, "initrd.cpio")
        with open(initrd, "wb") as f:
            f.write(archive.finish())
        os.makedirs(os.path.join(ctl, "share"))
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max",
               "-m", str(memory), "-smp", str(cpus), "-nographic",
               "-no-reboot", *_nic(forward),
               "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyS0 panic=-1 quiet",
               "-virtfs", "local,path=/,mount_tag=hostroot,"
               "security_model=none,readonly=on,multidevs=remap",
               "-virtfs", "local,path=%s,mount_tag=ctl,security_model=none,"
               "multidevs=remap" % os.path.join(ctl, "share")]
        if outdir is not None:
            cmd += ["-virtfs", "local,path=%s,mount_tag=out,"
                    "security_model=none,multidevs=remap"
                    % os.path.realpath(outdir)]
        stop = threading.Event()
        tail = None
        if follow is not None:
            tail = threading.Thread(target=_follow, daemon=True, args=(
                os.path.join(ctl, "share", "output"), follow, stop))
            tail.start()
        try:
            result = _boot(cmd, timeout + 300)
        finally:
            stop.set()
            if tail is not None:
                tail.join(5)
        try:
            with open(os.path.join(ctl, "share", "output"), "rb") as f:
                output = f.read().decode(errors="replace")
        except OSError:
            output = ""
    finally:
        shutil.rmtree(ctl, ignore_errors=True)

    log = result["console"]
    if result["start"] is None:
        raise GuestError("the guest did not start the command:\n"
                         + log[-4000:])
    m = re.search(r"@@MPKTLS-COMMAND-END status=(-?\d+)", log)
    if m:
        wait = int(m.group(1))
        status = (os.WEXITSTATUS(wait) if os.WIFEXITED(wait)
                  else -os.WTERMSIG(wait))
    else:
        status = None
    end = result["end"] or result["exit"]
    return GuestResult(
        status, output, console=log, timed_out=status is None,
        boot_seconds=result["start"],
        command_seconds=end - result["start"],
        total_seconds=result["exit"], junit=None)


# The guest's address under QEMU user networking, and a shell command that
# gives it to eth0 (a forwarded port reaches the guest there, not on lo).
GUEST_ADDR = "10.0.2.15"
GUEST_NET_UP = ("ip link set eth0 up && ip addr add %s/24 dev eth0"
                % GUEST_ADDR)


def _nic(forward):
    if not forward:
        return ["-nic", "none"]
    fwd = ",".join("hostfwd=tcp:127.0.0.1:%d-%s:%d" % (h, GUEST_ADDR, g)
                   for h, g in forward)
    return ["-nic", "user,model=virtio-net-pci,restrict=on," + fwd]


def _follow(path, out, stop):
    """Copy what is appended to path to out until stop is set."""
    pos = 0
    while True:
        done = stop.is_set()
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except OSError:
            data = b""
        if data:
            pos += len(data)
            out.write(data)
            out.flush()
        if done:
            return
        stop.wait(0.3)


def _boot(cmd, timeout):
    """Run QEMU; the console and when its markers appeared (seconds after
    the start, host clock)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    lines = []
    marks = {"start": None, "end": None}

    def read():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").replace("\r", "")
            lines.append(line)
            if "@@MPKTLS-COMMAND-START" in line:
                marks["start"] = time.monotonic() - t0
            elif "@@MPKTLS-COMMAND-END" in line:
                marks["end"] = time.monotonic() - t0

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lines.append("\n[qemu_guest: QEMU killed after %d s]\n" % timeout)
    reader.join(10)
    return dict(marks, console="".join(lines), exit=time.monotonic() - t0)


def run_pytest(build, path, args=(), timeout=1200, **kwargs):
    """Run `python3 -m pytest` on path in the guest, with a JUnit XML
    report that comes back through a writable share.  Returns the
    GuestResult; its junit is the XML text (None if pytest wrote none)."""
    outdir = tempfile.mkdtemp(prefix="mpktls-guest-out-")
    try:
        report = os.path.join(outdir, "junit.xml")
        argv = ["/usr/bin/python3", "-m", "pytest", "-q", "-rs",
                "-p", "no:cacheprovider", "--junitxml=" + report,
                *args, path]
        result = run_command(build, argv, timeout=timeout, outdir=outdir,
                             **kwargs)
        try:
            with open(report) as f:
                result.junit = f.read()
        except OSError:
            result.junit = None
        return result
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def main():
    """qemu_guest.py [--build DIR] [--out DIR] [--timeout S] ARGV...:
    run one command in the guest; print its output; exit with its code."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", help="a host directory shared writable")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--forward", action="append", default=[],
                    metavar="HOST:GUEST", help="forward a TCP port of "
                    "127.0.0.1 to the guest (eth0 is brought up first)")
    ap.add_argument("--follow", action="store_true",
                    help="print the command's output while it runs")
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.argv[:1] == ["--"]:
        del args.argv[0]
    forward = [tuple(int(p) for p in f.split(":")) for f in args.forward]
    if forward:     # eth0 up first: forwarded ports reach the guest there
        args.argv = ["sh", "-c", GUEST_NET_UP + ' && exec "$0" "$@"',
                     *args.argv]
    r = run_command(args.build, args.argv, timeout=args.timeout,
                    outdir=args.out, forward=forward,
                    follow=sys.stdout.buffer if args.follow else None)
    if not args.follow:
        sys.stdout.write(r.output)
    sys.stderr.write("[guest: boot %.1f s, command %.1f s, status %s]\n"
                     % (r.boot_seconds, r.command_seconds, r.status))
    return 1 if r.status is None else (r.status if r.status >= 0
                                       else 128 - r.status)


if __name__ == "__main__":
    sys.exit(main())
