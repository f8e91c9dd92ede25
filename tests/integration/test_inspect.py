"""mpk-inspect on real binaries: this machine's libc, ld.so and libcrypto,
and the built nginx and libkeystore.so.  The set of occurrences it reports
is compared with an independent byte search written here (ELF headers
parsed with struct, regexes over the executable bytes), and the facts that
DESIGN.md states are checked: libc's pkey_set holds a real WRPKRU followed
by `xor eax,eax; ret`, ld.so holds two real XRSTORs in its lazy-binding
trampolines (_dl_runtime_resolve_xsave and _xsavec), and libkeystore.so's
only WRPKRUs are its two gate labels, reported as real instructions and
safe.  No MPK needed."""

import json
import glob
import os
import re
import struct
import subprocess

import pytest

import mpktls

INSPECT = os.path.join(mpktls.BUILD, "bin", "mpk-inspect")
KEYSTORE = os.path.join(mpktls.BUILD, "lib", "libkeystore.so")
FIXTURES = os.path.join(mpktls.ROOT, "tests", "unit", "inspect_fixtures.S")
PAGE = 4096
SHF_EXECINSTR = 0x4
PT_LOAD, PF_X = 1, 0x1
SHT_NOBITS = 8


LIBC = mpktls.system_library("libc.so.6")
LDSO = mpktls.system_library("ld-linux-x86-64.so.2")
LIBCRYPTO = mpktls.system_library("libcrypto.so.3")
NGINX = mpktls.NGINX


# ---- the independent reference: ELF headers and a regex ------------------

class Elf:
    """The program and section headers of an ELF64 little-endian file."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        assert d[:4] == b"\x7fELF" and d[4] == 2 and d[5] == 1, path
        (self.type, _machine, _version, _entry, phoff, shoff, _flags,
         _ehsize, phentsize, phnum, shentsize, shnum,
         shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", d, 16)
        self.segments = []
        for i in range(phnum):
            (p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz,
             _align) = struct.unpack_from("<IIQQQQQQ", d, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.segments.append((p_flags, p_offset, p_vaddr, p_filesz))
        raw = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize)
               for i in range(shnum)]
        strtab = raw[shstrndx][4]
        self.sections = []
        for (name, sh_type, flags, addr, offset, size, *_rest) in raw:
            end = d.index(b"\0", strtab + name)
            self.sections.append((d[strtab + name:end].decode(), sh_type,
                                  flags, addr, offset, size))

    def executable_ranges(self):
        """File ranges mapped executable: PF_X segments, page-rounded."""
        ranges = []
        for flags, offset, _vaddr, filesz in self.segments:
            if flags & PF_X and filesz:
                lo = offset & ~(PAGE - 1)
                hi = min(-(-(offset + filesz) // PAGE) * PAGE, len(self.data))
                ranges.append((lo, hi))
        return sorted(ranges)

    def code_sections(self):
        return [(name, offset, size)
                for name, sh_type, flags, _addr, offset, size in self.sections
                if flags & SHF_EXECINSTR and sh_type != SHT_NOBITS and size]


SEQUENCE = re.compile(
    rb"(?=\x0f(?:\x01\xef"                               # WRPKRU
    rb"|\xae[\x28-\x2f\x68-\x6f\xa8-\xaf]"               # XRSTOR /5, mod != 3
    rb"|\xc7[\x18-\x1f\x58-\x5f\x98-\x9f]))")            # XRSTORS /3


def reference_hits(data, lo, hi):
    """{offset: kind} of every sequence whose bytes lie in data[lo:hi]."""
    hits = {}
    for m in SEQUENCE.finditer(data[lo:hi]):
        off = lo + m.start()
        op = data[off + 1]
        if op == 0x01:
            kind = "WRPKRU"
        elif op == 0xC7:
            kind = "XRSTORS"
        elif off > lo and 0x48 <= data[off - 1] <= 0x4F:     # REX.W
            kind = "XRSTOR64"
        else:
            kind = "XRSTOR"
        hits[off] = kind
    return hits


def reference_segments(path):
    elf = Elf(path)
    hits = {}
    for lo, hi in elf.executable_ranges():
        hits.update(reference_hits(elf.data, lo, hi))
    return hits


# ---- mpk-inspect ----------------------------------------------------------

def inspect_json(*args):
    r = subprocess.run([INSPECT, "--json", *args], capture_output=True,
                       text=True)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def file_hits(path, *args):
    _, out = inspect_json(*args, path)
    (result,) = out["results"]
    assert "error" not in result
    return result


def gate_labels(path):
    """File offsets of the keystore's two WRPKRU labels (nm, PT_LOAD)."""
    out = subprocess.run(["nm", path], capture_output=True, text=True,
                         check=True).stdout
    labels = dict((name, int(value, 16)) for value, _t, name in
                  (line.split() for line in out.splitlines()
                   if line.endswith("_wrpkru") and len(line.split()) == 3))
    elf = Elf(path)
    offsets = {}
    for name in ("ks_gate_enter_wrpkru", "ks_gate_leave_wrpkru"):
        vaddr = labels[name]
        (off,) = [vaddr - v + o for _f, o, v, size in elf.segments
                  if v <= vaddr < v + size]
        offsets[name] = off
    return offsets


@pytest.fixture(scope="module")
def fixtures_so(tmp_path_factory):
    """The unit tests' hand-made fixtures as a shared object: hits of every
    class, the positive control of the comparison."""
    d = tmp_path_factory.mktemp("inspect")
    so = str(d / "fixtures.so")
    subprocess.run(["cc", "-shared", "-nostdlib", "-o", so, FIXTURES],
                   check=True, capture_output=True)
    return so


BINARIES = {
    "libc": LIBC, "ld.so": LDSO, "libcrypto": LIBCRYPTO, "nginx": NGINX,
    "libkeystore": KEYSTORE,
}


@pytest.mark.parametrize("name", [*BINARIES, "fixtures"])
def test_same_occurrences_as_a_byte_search(name, fixtures_so):
    """Every offset and kind mpk-inspect reports, and no other, is found
    by the regex over the executable segments; within the executable
    sections the regex over section bytes agrees too."""
    path = BINARIES.get(name, fixtures_so)
    result = file_hits(path)
    reported = {h["offset"]: h["kind"] for h in result["hits"]}
    assert len(reported) == len(result["hits"])
    assert reported == reference_segments(path)

    elf = Elf(path)
    in_sections = {}
    for _name, offset, size in elf.code_sections():
        in_sections.update(reference_hits(elf.data, offset, offset + size))
    code = {h["offset"]: h["kind"] for h in result["hits"]
            if any(o <= h["offset"] and h["offset"] + 3 <= o + s
                   for _n, o, s in elf.code_sections())}
    assert code == in_sections
    print(f"{name}: {len(reported)} occurrences: " + ", ".join(
        f'{h["offset"]:#x} {h["kind"]} {h["class"]} {h["symbol"] or "-"}'
        for h in result["hits"]))


def test_fixtures_every_class(fixtures_so):
    """The control has every class, and the comparison above saw them."""
    result = file_hits(fixtures_so)
    assert result["counts"] == {
        "real": 6, "spanning": 2, "in-opcode": 1, "in-modrm-sib": 2,
        "in-displacement": 1, "in-immediate": 5, "outside-code": 1}
    assert result["kinds"] == {"WRPKRU": 10, "XRSTOR": 3, "XRSTOR64": 3,
                               "XRSTORS": 2}


def test_libc_pkey_set_holds_a_real_wrpkru():
    result = file_hits(LIBC)
    wrpkru = [h for h in result["hits"] if h["kind"] == "WRPKRU"]
    assert [(h["symbol"], h["class"], h["safe"]) for h in wrpkru] == \
        [("pkey_set", "real", False)]
    data = Elf(LIBC).data
    off = wrpkru[0]["offset"]
    assert data[off + 3:off + 6] == b"\x31\xc0\xc3"   # xor eax,eax; ret


def test_ldso_lazy_binding_holds_two_real_xrstors():
    """ld.so has no .symtab here, so the trampolines are recognised by
    their code: each XRSTOR restores what an XSAVE (xsave variant) or
    XSAVEC (xsavec variant) saved a few instructions before."""
    result = file_hits(LDSO)
    xrstors = [h for h in result["hits"] if h["kind"].startswith("XRSTOR")]
    assert len(xrstors) == 2
    assert all(h["class"] == "real" and not h["safe"] for h in xrstors)
    elf = Elf(LDSO)
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", LDSO],
                          capture_output=True, text=True, check=True).stdout
    insns = [(int(a, 16), m) for a, m in
             re.findall(r"^\s*([0-9a-f]+):\s+(\S+)", text, re.M)]
    saves = []
    for h in xrstors:
        (vaddr,) = [h["offset"] - o + v for _f, o, v, size in elf.segments
                    if o <= h["offset"] < o + size]
        at = [i for i, (a, _m) in enumerate(insns) if a == vaddr]
        assert at and insns[at[0]][1] == "xrstor"
        before = [m for _a, m in insns[max(0, at[0] - 20):at[0]]
                  if m.startswith("xsave")]
        saves.append(before[-1])
    assert sorted(saves) == ["xsave", "xsavec"]


def test_keystore_wrpkru_only_at_its_gates():
    result = file_hits(KEYSTORE)
    labels = gate_labels(KEYSTORE)
    wrpkru = {h["offset"]: h for h in result["hits"] if h["kind"] == "WRPKRU"}
    assert sorted(wrpkru) == sorted(labels.values())
    for name, off in labels.items():
        h = wrpkru[off]
        assert (h["class"], h["symbol"], h["symbol_offset"], h["safe"]) == \
            ("real", name, 0, True)
    assert result["unsafe"] == 0
    assert result["hits"] == list(wrpkru.values())


def test_keystore_gates_unsafe_without_registration():
    """The control: without the default gate symbols, the same two hits
    are unsafe, and the exit status says so."""
    code, out = inspect_json("--no-default-gates", KEYSTORE)
    assert code == 1
    assert out["results"][0]["unsafe"] == 2
    code, out = inspect_json("--no-default-gates",
                             "--gate", "libkeystore.so:ks_gate_enter_wrpkru",
                             "--gate", "other.so:ks_gate_leave_wrpkru",
                             KEYSTORE)
    assert out["results"][0]["unsafe"] == 1


def test_text_output_and_exit_status(tmp_path):
    r = subprocess.run([INSPECT, KEYSTORE], capture_output=True, text=True)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert all("kind=WRPKRU class=real" in line and line.endswith(" safe")
               for line in lines[:2])
    assert re.search(r"hits=2 real=2 .* unsafe=0$", lines[2])

    r = subprocess.run([INSPECT, LIBC], capture_output=True, text=True)
    assert r.returncode == 1
    assert re.search(r"section=\.text symbol=pkey_set\+0x[0-9a-f]+ "
                     r"kind=WRPKRU class=real .* unsafe$", r.stdout, re.M)

    not_elf = tmp_path / "not-elf"
    not_elf.write_text("hello\n")
    r = subprocess.run([INSPECT, str(not_elf), KEYSTORE], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "not-elf" in r.stderr
    assert "unsafe=0" in r.stdout                 # the other file still ran


def test_self_inspects_the_running_process():
    """--self: libc's and ld.so's hits are found in memory as in the
    files, the vDSO is read as an ELF image (nothing decoded blindly),
    and nothing executable went unread."""
    code, out = inspect_json("--self")
    assert code == 1
    (result,) = out["results"]
    assert result["uninspected_pages"] == 0
    assert result["linear_mappings"] == 0
    assert result["mappings"] >= 4               # mpk-inspect, libc, ld.so, vDSO
    by_object = {}
    for h in result["hits"]:
        by_object.setdefault(os.path.realpath(h["object"]), []).append(h)
    expected = {LIBC: file_hits(LIBC)["hits"], LDSO: file_hits(LDSO)["hits"]}
    for path, hits in expected.items():
        got = by_object.get(path, [])
        assert [(h["offset"], h["kind"], h["class"]) for h in got] == \
            [(h["offset"], h["kind"], h["class"]) for h in hits]
        assert all(h["addr"] for h in got)
    assert os.path.realpath(INSPECT) not in by_object


def test_bench_prints_figures():
    r = subprocess.run([INSPECT, "--bench", KEYSTORE], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"libkeystore\.so\s+\d+\s+2\s+[\d.]+\s+[\d.]+\s+[\d.]+$",
                     r.stdout, re.M)
    assert re.search(r"^process \(mpk-inspect itself\): .* us/page$",
                     r.stdout, re.M)
    print(r.stdout)


def test_project_code_loaded_in_u_has_no_pkru_writes(tmp_path):
    """What a worker will load besides the keystore carries no WRPKRU/XRSTOR
    of ours: the NGINX module's objects, the provider module, the
    inspector itself (which emits checked WRPKRUs into trampolines at run
    time, but must carry none) have none at any offset.  NGINX as a whole
    (with OpenSSL's libcrypto and libssl linked in) has no real one; a
    sequence inside another instruction may come and go with the code's
    layout (a call's displacement that happens to hold 0F C7 18): those
    are what each worker's rewriter removes at startup, which the NGINX
    tests with keystore on exercise.  The control is libkeystore.so, where
    the scan finds the two gate sites."""
    objs = tmp_path / "libinspect"
    objs.mkdir()
    subprocess.run(["ar", "x", os.path.join(mpktls.BUILD, "lib", "libinspect.a")],
                   cwd=objs, check=True)
    files = [os.path.join(mpktls.BUILD, p) for p in (
        "bin/mpk-inspect", "lib/ossl-modules/keystore.so")]
    files += sorted(str(p) for p in objs.glob("*.o"))
    files += sorted(glob.glob(os.path.join(
        mpktls.BUILD, "nginx", "addon", "nginx-module", "*.o")))
    out = subprocess.run([INSPECT, *files], capture_output=True,
                         text=True).stdout
    summaries = [l for l in out.splitlines() if " hits=" in l]
    assert len(summaries) == len(files)
    assert all(" hits=0 " in l for l in summaries), out
    nginx = subprocess.run([INSPECT, os.path.join(mpktls.BUILD, "sbin/nginx")],
                           capture_output=True, text=True).stdout
    assert " real=0 " in nginx and " spanning=0 " in nginx, nginx
    control = subprocess.run(
        [INSPECT, KEYSTORE],
        capture_output=True, text=True).stdout
    assert " hits=2 " in control and " unsafe=0" in control
