#!/usr/bin/python3
"""Run the gate fuzzer (`make fuzz`).

    run_fuzz.py --build DIR [--seconds N] [--replay]

Natively on a CPU with pku, else in the QEMU guest (tests/lib/
qemu_guest.py), where the fuzzer sees the host's files read-only and
writes only build/fuzz/ (shared with the host): the working corpus
(build/fuzz/corpus, seeded from tests/fuzz/corpus/gate) and any crash
(build/fuzz/crash-*).  Prints libFuzzer's final statistics and a summary
line; exits 1 if the fuzzer failed or left a crash.

--replay runs every committed seed and regression input once
(tests/fuzz/corpus/), fuzzing nothing: the check `make test` makes.
"""

import argparse
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import qemu_guest  # noqa: E402

SEEDS = os.path.join(HERE, "corpus", "gate")
REGRESSIONS = os.path.join(HERE, "corpus", "regressions")


def fuzzer_argv(build, seconds, replay):
    binary = os.path.join(build, "tests", "fuzz", "fuzz_gate")
    out = os.path.join(build, "fuzz")
    # deadly signals are the harness's (fuzz_crash.c), not libFuzzer's
    common = [binary, "-rss_limit_mb=1536", "-timeout=60",
              "-print_final_stats=1", "-artifact_prefix=%s/" % out,
              "-handle_segv=0", "-handle_bus=0", "-handle_ill=0",
              "-handle_fpe=0", "-handle_abrt=0"]
    dirs = [d for d in (SEEDS, REGRESSIONS) if os.path.isdir(d)]
    if replay:
        return common + ["-runs=0"] + dirs
    work = os.path.join(out, "corpus")
    os.makedirs(work, exist_ok=True)
    return common + ["-max_total_time=%d" % seconds, work] + dirs


def run(build, argv, seconds):
    """(status, output): natively with pku, else in the guest."""
    if qemu_guest.cpu_has_pku():
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout
    r = qemu_guest.run_command(build, argv, timeout=seconds + 600,
                               outdir=os.path.join(build, "fuzz"),
                               memory=2048)
    return r.status, r.output


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--replay", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    out = os.path.join(build, "fuzz")
    os.makedirs(out, exist_ok=True)
    before = set(glob.glob(os.path.join(out, "crash-*"))
                 + glob.glob(os.path.join(out, "leak-*"))
                 + glob.glob(os.path.join(out, "timeout-*")))

    where = "natively" if qemu_guest.cpu_has_pku() else \
        "in the QEMU guest (emulated PKU: figures are not hardware speed)"
    print("fuzz_gate: %s, %s" % (
        "replaying the committed corpus" if args.replay
        else "%d s" % args.seconds, where))
    status, output = run(build, fuzzer_argv(build, args.seconds,
                                            args.replay), args.seconds)
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", output, re.M))
    found = sorted(set(glob.glob(os.path.join(out, "crash-*"))
                       + glob.glob(os.path.join(out, "leak-*"))
                       + glob.glob(os.path.join(out, "timeout-*"))) - before)
    tail = output[-6000:] if status != 0 or found else ""
    print(tail, end="")
    for line in output.splitlines():
        if line.startswith("stat::") or line.startswith("INFO: fuzz_gate"):
            print(line)
    print("fuzz_gate: status %s, %s runs, %s exec/s, %s new units, "
          "peak RSS %s MB, %d new crash file(s)%s" % (
              status, stats.get("number_of_executed_units", "?"),
              stats.get("average_exec_per_sec", "?"),
              stats.get("new_units_added", "?"),
              stats.get("peak_rss_mb", "?"), len(found),
              "".join("\n  " + f for f in found)))
    return 0 if status == 0 and not found else 1


if __name__ == "__main__":
    sys.exit(main())
