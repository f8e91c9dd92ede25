"""configure: the CPU check (with a simulated cpuinfo), the private apt
configuration, and that the system's apt sources stay untouched."""

import hashlib
import os
import shutil
import subprocess

import pytest

import mpktls

CONFIGURE = os.path.join(mpktls.ROOT, "configure")

# A cpuinfo "flags" line of a CPU without protection keys, and one with.
FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "
         "clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc aes xsave "
         "avx avx2 avx512f smep smap")


def apt_snapshot():
    """Hash of every file name, mode and content under /etc/apt."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk("/etc/apt")):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(path.encode() + b"\0" + str(st.st_mode).encode())
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def builddir():
    """A build directory of its own, so configure fetches and unpacks the
    pinned sources again (the path the first configure takes)."""
    path = mpktls.work_dir("configure")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def configure(builddir, tmp_path, flags):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: %s\n" % flags)
    env = dict(os.environ, MPKTLS_TEST_CPUINFO=str(cpuinfo))
    return subprocess.run([CONFIGURE, "--builddir=" + builddir,
                           "--no-install"], env=env, capture_output=True,
                          text=True, timeout=600)


def read_config_mk(builddir):
    with open(os.path.join(builddir, "config.mk")) as f:
        return f.read()


def test_without_pku_warns_and_still_configures(builddir, tmp_path):
    before = apt_snapshot()
    r = configure(builddir, tmp_path, FLAGS)
    assert apt_snapshot() == before, "configure changed /etc/apt"

    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr
    assert "lacks 'pku ospke'" in r.stderr
    assert "'keystore on' cannot be enabled" in r.stderr
    assert "MPK_CPU = no" in read_config_mk(builddir)

    # the sources came through the private configuration, with both pins
    src = os.path.join(builddir, "src")
    mk = read_config_mk(builddir)
    for key in ("OPENSSL_SRC", "NGINX_SRC"):
        tree = [line.split(" = ")[1] for line in mk.splitlines()
                if line.startswith(key + " = ")][0]
        assert tree.startswith(src) and os.path.isdir(tree)
    with open(os.path.join(builddir, "apt", "sources.list")) as f:
        assert "deb-src http://deb.debian.org/debian trixie main" in f.read()


def test_missing_ospke_alone_is_named(builddir, tmp_path):
    r = configure(builddir, tmp_path, FLAGS + " pku")
    assert r.returncode == 0, r.stderr
    assert "lacks 'ospke'" in r.stderr


def test_with_pku_no_cpu_warning(builddir, tmp_path):
    before = apt_snapshot()
    r = configure(builddir, tmp_path, FLAGS + " pku ospke")
    assert apt_snapshot() == before
    assert r.returncode == 0, r.stderr
    assert "lacks" not in r.stderr
    assert "CPU has pku and ospke" in r.stdout
    assert "MPK_CPU = yes" in read_config_mk(builddir)
    # the second run reuses the downloads and the unpacked trees
    assert "fetching" not in r.stdout
    assert "unpacking" not in r.stdout


def test_unknown_option_fails(tmp_path):
    r = subprocess.run([CONFIGURE, "--frobnicate"], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "unknown option '--frobnicate'" in r.stderr
