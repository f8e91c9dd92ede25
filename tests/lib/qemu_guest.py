"""Run test programs inside a QEMU guest whose emulated CPU has protection
keys (TCG, `-cpu max`), for machines whose own CPU has none.

The guest is the Debian kernel configure extracted (build/qemu/vmlinuz)
and an initramfs made here: tests/qemu/guest_init as /init, and each test
program with the shared libraries it needs at the same paths.  One boot
runs them all.  Emulation makes MPK behave as on hardware (faults,
SEGV_PKUERR, PKRU); it says nothing about speed.
"""

import os
import re
import stat
import subprocess
import tempfile
import time

KERNEL_REL = os.path.join("qemu", "vmlinuz")
INIT_REL = os.path.join("tests", "qemu", "guest_init")


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
