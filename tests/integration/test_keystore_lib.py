"""libkeystore.so as shipped: what it exports and imports, how it is
linked, and where its WRPKRU instructions are.  No MPK needed."""

import os
import re
import subprocess

import pytest

import mpktls

LIB = os.path.join(mpktls.BUILD, "lib", "libkeystore.so")
CHECK = os.path.join(mpktls.ROOT, "tests", "unit", "check_exports.sh")


def check_exports(lib):
    return subprocess.run(["sh", CHECK, lib], capture_output=True, text=True)


def test_exports_only_the_api():
    r = check_exports(LIB)
    assert r.returncode == 0, r.stdout
    assert "0 unexpected, 0 missing, 0 non-glibc imports" in r.stdout


def keystore_objects():
    """The shipped library's objects, from KS_SRCS in keystore/build.mk."""
    with open(os.path.join(mpktls.ROOT, "keystore", "build.mk")) as f:
        mk = f.read().replace("\\\n", " ")
    srcs = re.search(r"^KS_SRCS := (.*)$", mk, re.M).group(1).split()
    return [os.path.join(mpktls.BUILD, "obj", "ks",
                         os.path.splitext(os.path.basename(src))[0] + ".o")
            for src in srcs]


def test_export_check_catches_a_leaky_build(tmp_path):
    """The control: the same objects linked without --exclude-libs export
    the private libcrypto, and the check fails."""
    objs = keystore_objects()
    config = open(os.path.join(mpktls.BUILD, "config.mk")).read()
    src = re.search(r"^OPENSSL_SRC = (.*)$", config, re.M).group(1)
    leaky = str(tmp_path / "libkeystore.so")
    subprocess.run(["cc", "-shared", "-nostartfiles", "-o", leaky, *objs,
                    os.path.join(src, ".openssl", "lib", "libcrypto.a")],
                   check=True, capture_output=True)
    r = check_exports(leaky)
    assert r.returncode == 1
    assert "unexpected export: " in r.stdout


def test_no_destructors_and_immediate_binding():
    """ld.so must run none of the keystore's code at exit (T is closed
    then), and its GOT is read-only from the start."""
    dynamic = subprocess.run(["readelf", "-d", LIB], capture_output=True,
                             text=True, check=True).stdout
    tags = re.findall(r"\((\w+)\)", dynamic)
    for tag in ("INIT", "FINI", "INIT_ARRAY", "FINI_ARRAY", "TEXTREL"):
        assert tag not in tags
    assert re.search(r"\(FLAGS(_1)?\).*\bNOW\b", dynamic)
    segments = subprocess.run(["readelf", "-lW", LIB], capture_output=True,
                              text=True, check=True).stdout
    assert "GNU_RELRO" in segments


def wrpkru_offsets(path):
    with open(path, "rb") as f:
        data = f.read()
    return [m.start() for m in re.finditer(b"\x0f\x01\xef", data)]


def gate_site_offsets(lib):
    out = subprocess.run(["nm", lib], capture_output=True, text=True,
                         check=True).stdout
    sites = {}
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) t (ks_gate_(enter|leave)_wrpkru)$", line)
        if m:
            sites[m.group(2)] = int(m.group(1), 16)
    return sites


def file_offset(lib, vaddr):
    """File offset of a virtual address (via the PT_LOAD headers)."""
    out = subprocess.run(["readelf", "-lW", lib], capture_output=True,
                         text=True, check=True).stdout
    for m in re.finditer(r"LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+\S+\s+"
                         r"(0x[0-9a-f]+)", out):
        off, va, size = (int(x, 16) for x in m.groups())
        if va <= vaddr < va + size:
            return vaddr - va + off
    raise AssertionError("address not in a segment")


@pytest.mark.parametrize("lib", ["libkeystore.so", "libkeystore-test.so"])
def test_wrpkru_only_at_the_two_gate_sites(lib):
    """Every 0F 01 EF byte sequence in the library, at any offset, is one
    of the gate's two documented WRPKRU sites."""
    path = os.path.join(mpktls.BUILD, "lib", lib)
    sites = gate_site_offsets(path)
    assert set(sites) == {"ks_gate_enter_wrpkru", "ks_gate_leave_wrpkru"}
    expected = sorted(file_offset(path, v) for v in sites.values())
    assert wrpkru_offsets(path) == expected


def test_wrpkru_scan_finds_other_sites():
    """The control: the benchmark's own WRPKRU pair is found by the same
    scan (so the scan is not blind)."""
    bench = os.path.join(mpktls.BUILD, "bin", "keystore-bench")
    assert len(wrpkru_offsets(bench)) >= 2
