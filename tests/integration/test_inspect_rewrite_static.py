"""`mpk-inspect --rewrite OUT FILE`: ERIM's static rewriting of an ELF file.

The program under test is built here from inspect_rewrite_main.c and the
unit tests' fixtures (tests/unit/inspect_fixtures.S with -DFX_RUN_IN_TEXT):
its .text holds a WRPKRU/XRSTOR sequence of every class, and the runnable
blocks as functions.  Its main runs each block from .text and from an
untouched copy in anonymous memory with the same random inputs, and exits 0
only if they always agree.  Built both as a PIE and with -no-pie.

For each build: the original has unsafe hits of every class; the rewritten
file scans clean (mpk-inspect exits 0), an independent byte search finds
sequences only in the new .mpk_tramp section, one per checked copy, and the
rewritten program runs and exits 0.  Controls: the checks are for key 1
only (--pkey 2 finds them unsafe), a changed check byte is unsafe, a block
no rule can rewrite makes --rewrite fail closed without writing anything,
and a second --rewrite changes nothing.  The system's libc and ld.so are
rewritten too (their real WRPKRU and XRSTORs), scan clean, and still load
programs.  No MPK is needed: nothing here executes a check (a rewritten
real site needs OSPKE, so lazy binding through the rewritten ld.so is
avoided with LD_BIND_NOW).
"""

import json
import os
import re
import shutil
import struct
import subprocess

import pytest

import mpktls

INSPECT = os.path.join(mpktls.BUILD, "bin", "mpk-inspect")
MAIN = os.path.join(mpktls.ROOT, "tests", "integration",
                    "inspect_rewrite_main.c")
FIXTURES = os.path.join(mpktls.ROOT, "tests", "unit", "inspect_fixtures.S")
PT_LOAD, PF_X, PF_W = 1, 1, 2
PAGE = 4096
CLASSES = ["real", "spanning", "in-opcode", "in-modrm-sib",
           "in-displacement", "in-immediate", "outside-code"]

SEQUENCE = re.compile(
    rb"(?=\x0f(?:\x01\xef"                               # WRPKRU
    rb"|\xae[\x28-\x2f\x68-\x6f\xa8-\xaf]"               # XRSTOR /5, mod != 3
    rb"|\xc7[\x18-\x1f\x58-\x5f\x98-\x9f]))")            # XRSTORS /3


def elf_headers(path):
    """(segments, sections) of an ELF64 file: segments as (type, flags,
    offset, vaddr, filesz, memsz), sections as {name: (addr, offset,
    size, flags)}."""
    with open(path, "rb") as f:
        d = f.read()
    (_type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize,
     phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack_from(
        "<HHIQQQIHHHHHH", d, 16)
    segments = []
    for i in range(phnum):
        (p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz,
         _align) = struct.unpack_from("<IIQQQQQQ", d, phoff + i * phentsize)
        segments.append((p_type, p_flags, p_offset, p_vaddr, p_filesz,
                         p_memsz))
    raw = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize)
           for i in range(shnum)]
    strtab = raw[shstrndx][4]
    sections = {}
    for name, _t, flags, addr, offset, size, *_rest in raw:
        end = d.index(b"\0", strtab + name)
        sections[d[strtab + name:end].decode()] = (addr, offset, size, flags)
    return d, segments, sections


def sequences_in_executable_segments(path):
    """File offsets of every sequence in the PF_X PT_LOAD segments
    (page-rounded, as the kernel maps them)."""
    d, segments, _ = elf_headers(path)
    found = set()
    for p_type, flags, offset, _vaddr, filesz, _memsz in segments:
        if p_type == PT_LOAD and flags & PF_X and filesz:
            lo = offset & ~(PAGE - 1)
            hi = min(-(-(offset + filesz) // PAGE) * PAGE, len(d))
            found.update(lo + m.start() for m in SEQUENCE.finditer(d[lo:hi]))
    return found


def inspect(*args):
    r = subprocess.run([INSPECT, "--json", *args], capture_output=True,
                       text=True)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), \
        r.stderr


def build(directory, name, *flags):
    path = os.path.join(directory, name)
    subprocess.run(["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-DFX_RUN_IN_TEXT", *flags, "-o", path, MAIN, FIXTURES],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def program(request, tmp_path_factory):
    """The test program, built as a PIE or not, and rewritten."""
    d = str(tmp_path_factory.mktemp("rewrite-" + request.param))
    prog = build(d, "prog", "-" + request.param)
    out = os.path.join(d, "prog.rewritten")
    r = subprocess.run([INSPECT, "--json", "--rewrite", out, prog],
                       capture_output=True, text=True)
    return {"dir": d, "prog": prog, "out": out, "rc": r.returncode,
            "stdout": r.stdout, "stderr": r.stderr}


def test_original_has_every_class_and_runs(program):
    code, report, _ = inspect(program["prog"])
    assert code == 1
    (result,) = report["results"]
    assert all(result["counts"][c] > 0 for c in CLASSES), result["counts"]
    assert result["unsafe"] == len(result["hits"])
    # the control of the comparison: the original agrees with its copy
    r = subprocess.run([program["prog"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert re.search(r"^blocks: (\d+) run, \1 agree$", r.stdout, re.M)


def test_rewrite_succeeds_and_logs_each_site(program):
    assert program["rc"] == 0, program["stderr"]
    _, report, _ = inspect(program["prog"])
    unsafe = report["results"][0]["unsafe"]
    out = json.loads(program["stdout"])
    assert out["mode"] == "rewrite"
    rewrote = re.findall(r"^mpk-inspect: rewrote .*$", program["stderr"], re.M)
    print("\n".join(rewrote))
    # one rewrite per site (a site may hold more than one hit)
    assert out["rewritten"] == len(rewrote)
    assert 0 < out["rewritten"] <= unsafe
    for cls in CLASSES[1:]:
        assert any("(%s)" % cls in line for line in rewrote), cls
    for rule in ("checked copy", "NOP inserted", "register substituted",
                 "immediate split", "displacement moved into the base",
                 "immediate through a saved register",
                 "address through a saved register"):
        assert any(rule in line for line in rewrote), rule


def test_output_scans_clean(program):
    code, report, _ = inspect(program["out"])
    assert code == 0
    (result,) = report["results"]
    assert result["unsafe"] == 0
    assert result["uninspected_pages"] == 0
    hits = result["hits"]
    assert hits and all(h["class"] == "real" and h["safe"] and
                        h["section"] == ".mpk_tramp" for h in hits)
    # the same in text form, as a user runs it
    r = subprocess.run([INSPECT, program["out"]], capture_output=True,
                       text=True)
    assert r.returncode == 0
    assert r.stdout.rstrip().endswith("unsafe=0")


def test_independent_search_finds_only_checked_copies(program):
    """A regex over the output's executable segments: every sequence is in
    .mpk_tramp, at a hit mpk-inspect reports as a safe checked copy; none
    is left in .text."""
    found = sequences_in_executable_segments(program["out"])
    _, _, sections = elf_headers(program["out"])
    _addr, t_off, t_size, t_flags = sections[".mpk_tramp"]
    assert t_flags & 0x4                                  # SHF_EXECINSTR
    assert all(t_off <= off < t_off + t_size for off in found)
    _, report, _ = inspect(program["out"])
    reported = {h["offset"] for h in report["results"][0]["hits"]}
    assert found == reported
    # and the original's .text held many
    assert len(sequences_in_executable_segments(program["prog"])) > len(found)


def test_new_segment(program):
    """A PT_NOTE became a PT_LOAD, R+X, after the last one, above .bss;
    nothing else moved."""
    _, before, _ = elf_headers(program["prog"])
    _, after, sections = elf_headers(program["out"])
    assert len(before) == len(after)
    loads_before = [s for s in before if s[0] == PT_LOAD]
    loads_after = [s for s in after if s[0] == PT_LOAD]
    assert loads_after[:-1] == loads_before
    new = loads_after[-1]
    assert new[1] == 5                                    # PF_R | PF_X
    assert new[3] >= max(s[3] + s[5] for s in loads_before) + PAGE
    assert new[2] % PAGE == new[3] % PAGE == 0
    addr, offset, _, _ = sections[".mpk_tramp"]
    assert (addr, offset) == (new[3], new[2])
    assert sum(s[0] == 4 for s in after) == sum(s[0] == 4 for s in before) - 1
    r = subprocess.run(["readelf", "-lSW", program["out"]],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


def test_output_runs_with_the_original_behaviour(program):
    r = subprocess.run([program["out"]], capture_output=True, text=True,
                       timeout=60)
    print(r.stdout)
    assert r.returncode == 0, r.stdout
    m = re.search(r"^blocks: (\d+) run, (\d+) agree$", r.stdout, re.M)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 20


def test_checks_are_for_their_key_only(program):
    """Control: for key 2 the checks (of key 1) are no protection."""
    code, report, _ = inspect("--pkey", "2", program["out"])
    assert code == 1
    result = report["results"][0]
    assert result["unsafe"] == len(result["hits"]) > 0
    code, _, _ = inspect("--pkey", "0", program["out"])
    assert code == 1


def test_changed_check_is_unsafe(program, tmp_path):
    """Control: one byte of one check changed, and that copy is unsafe."""
    _, report, _ = inspect(program["out"])
    hit = report["results"][0]["hits"][0]
    bad = str(tmp_path / "bad")
    shutil.copy(program["out"], bad)
    with open(bad, "r+b") as f:
        f.seek(hit["offset"] + 3 + 4)             # inside the check
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    code, report, _ = inspect(bad)
    assert code == 1
    assert [h["offset"] for h in report["results"][0]["hits"]
            if not h["safe"]] == [hit["offset"]]


def test_second_rewrite_changes_nothing(program, tmp_path):
    again = str(tmp_path / "again")
    r = subprocess.run([INSPECT, "--rewrite", again, program["out"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "nothing to rewrite" in r.stderr
    with open(again, "rb") as a, open(program["out"], "rb") as b:
        assert a.read() == b.read()


def test_unrewritable_site_fails_closed(tmp_path):
    """push $0xef010f: no rule rewrites it (it moves RSP itself): exit 1,
    the site is named, and no output is written."""
    prog = build(str(tmp_path), "refused", "-DFX_RUN_REFUSED_IN_TEXT")
    out = str(tmp_path / "refused.out")
    r = subprocess.run([INSPECT, "--rewrite", out, prog], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert re.search(r"cannot rewrite WRPKRU \(in-immediate\) .*"
                     r"fxt_refuse_push.*push", r.stderr)
    assert "nothing written" in r.stderr
    assert not os.path.exists(out)


def test_usage_errors(tmp_path):
    prog = str(tmp_path / "not-elf")
    with open(prog, "w") as f:
        f.write("hello\n")
    out = str(tmp_path / "out")
    r = subprocess.run([INSPECT, "--rewrite", out, prog], capture_output=True,
                       text=True)
    assert r.returncode == 2 and not os.path.exists(out)
    r = subprocess.run([INSPECT, "--pkey", "0", "--rewrite", out, prog],
                       capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([INSPECT, "--pkey", "16", prog], capture_output=True,
                       text=True)
    assert r.returncode == 2


def test_system_libc_and_ldso(tmp_path):
    """Shared objects: libc's pkey_set WRPKRU and ld.so's two XRSTORs are
    rewritten, the outputs scan clean, and they still load programs."""
    libdir = tmp_path / "lib"
    libdir.mkdir()
    libc = str(libdir / "libc.so.6")
    ldso = str(tmp_path / "ld.so")
    system = mpktls.system_library
    for src, dst, n in ((system("libc.so.6"), libc, 1),
                        (system("ld-linux-x86-64.so.2"), ldso, 2)):
        r = subprocess.run([INSPECT, "--rewrite", dst, src],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert len(re.findall(r"^mpk-inspect: rewrote", r.stderr, re.M)) == n
        code, report, _ = inspect(dst)
        assert code == 0
        assert [h["section"] for h in report["results"][0]["hits"]] == \
            [".mpk_tramp"] * n
    env = dict(os.environ, LD_BIND_NOW="1")
    r = subprocess.run([ldso, "--library-path", str(libdir), "/bin/echo",
                        "rewritten"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout == "rewritten\n", r.stderr
    # the rewritten libc is the one loaded
    r = subprocess.run([ldso, "--list", "--library-path", str(libdir),
                        "/bin/echo"], capture_output=True, text=True, env=env)
    assert libc in r.stdout
