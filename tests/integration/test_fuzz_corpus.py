"""The gate fuzzer's committed inputs (tests/fuzz/corpus/: the seeds, and
any input that once crashed) replay without a crash, and its crash
catcher works (its control).  Needs MPK: natively on a CPU with pku, else
in the QEMU guest.  Fuzzing itself is `make fuzz`, not part of the tests."""

import glob
import os
import re
import subprocess

import pytest

import mpktls
import qemu_guest

RUN = os.path.join(mpktls.ROOT, "tests", "fuzz", "run_fuzz.py")
BIN = os.path.join(mpktls.BUILD, "tests", "fuzz", "fuzz_gate")
CORPUS = os.path.join(mpktls.ROOT, "tests", "fuzz", "corpus")

if not os.path.exists(BIN):
    pytest.skip("no fuzz_gate (clang is not installed)",
                allow_module_level=True)
if not qemu_guest.cpu_has_pku() and \
        qemu_guest.command_unavailable(mpktls.BUILD) is not None:
    pytest.skip("no pku and no QEMU guest: "
                + qemu_guest.command_unavailable(mpktls.BUILD),
                allow_module_level=True)


def test_committed_inputs_replay():
    inputs = [p for p in glob.glob(os.path.join(CORPUS, "*", "*"))
              if os.path.isfile(p)]
    r = subprocess.run(["/usr/bin/python3", RUN, "--build", mpktls.BUILD,
                        "--replay"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    runs = re.search(r"status 0, (\d+) runs", r.stdout)
    assert runs and int(runs.group(1)) >= len(inputs) > 0, r.stdout[-2000:]


def test_a_fault_in_t_keeps_the_input(tmp_path):
    """The control of fuzz_crash.c: T writes to an unmapped U page; the
    process dies and the input is in crash-t-*."""
    out = str(tmp_path)
    os.chmod(out, 0o777)
    argv = [BIN, "-runs=1", "-handle_segv=0", "-handle_bus=0",
            "-handle_ill=0", "-handle_fpe=0", "-handle_abrt=0",
            "-artifact_prefix=%s/" % out]
    env = {"FUZZ_CRASH_CONTROL": "1"}
    if qemu_guest.cpu_has_pku():
        p = subprocess.run(argv, env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=300)
        status, output = p.returncode, p.stdout + p.stderr
    else:
        status, output = qemu_guest.run_command(
            mpktls.BUILD, argv, env=env, timeout=300, outdir=out)
    assert status != 0, output[-2000:]
    assert "fuzz: deadly signal 11" in output, output[-2000:]
    assert glob.glob(os.path.join(out, "crash-t-*")), output[-2000:]
