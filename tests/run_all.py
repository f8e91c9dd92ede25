#!/usr/bin/python3
"""Run every test of mpk-tls and print one closing line.

    run_all.py --build DIR [--mpk UNIT_TEST...] UNIT_TEST...

Runs each cmocka binary (TAP output), then the pytest integration suite
(tests/integration) and the attack suite (tests/attacks, whose table of
results it prints), and ends with

    N passed, N failed, N skipped

The unit tests named after --mpk need protection keys: they run natively
on a CPU with pku/ospke, otherwise all together in one QEMU guest that
emulates PKU (tests/lib/qemu_guest.py), and are skipped only if neither is
possible.  Exit status 0 only if nothing failed and something ran.  A unit binary that
crashes or reports fewer results than it planned counts as one failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import qemu_guest  # noqa: E402


def parse_tap(name, output, returncode):
    """(passed, failed, skipped) from one cmocka binary's TAP output."""
    passed = failed = skipped = 0
    planned = None
    for line in output.splitlines():
        m = re.match(r"^1\.\.(\d+)$", line)
        if m:
            planned = int(m.group(1))
        elif re.match(r"^not ok \d+ # SKIP", line):
            skipped += 1
        elif re.match(r"^not ok \d+", line):
            failed += 1
        elif re.match(r"^ok \d+", line):
            passed += 1
    done = passed + failed + skipped
    if returncode < 0 or planned is None or done != planned:
        print(f"{name}: ended with status {returncode} after "
              f"{done} of {planned} tests")
        failed += 1
    if failed:
        print(output)
    print(f"unit {name}: {passed} passed, {failed} failed, {skipped} skipped")
    return passed, failed, skipped


def run_unit(binary):
    """Return (passed, failed, skipped) of one cmocka binary."""
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    proc = subprocess.run([binary], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    return parse_tap(os.path.basename(binary), proc.stdout, proc.returncode)


def cpu_has_mpk():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split()
                return "pku" in flags and "ospke" in flags
    return False


def run_mpk_units(build, binaries):
    """The unit tests that need MPK: natively on a CPU with pku, else in a
    QEMU guest that emulates it, else skipped with the reason."""
    if not binaries:
        return [0, 0, 0]
    if cpu_has_mpk():
        results = [run_unit(b) for b in binaries]
        return [sum(r[i] for r in results) for i in range(3)]
    if qemu_guest.available(build) is None:
        for b in binaries:
            print(f"unit {os.path.basename(b)}: skipped: this CPU has no "
                  "pku/ospke and no guest kernel for emulation "
                  "(./configure fetches one)")
        return [0, 0, len(binaries)]
    print("this CPU has no pku/ospke: running the MPK unit tests in a QEMU "
          "guest with emulated PKU (behaviour, not speed)")
    runs = qemu_guest.run(build, [os.path.abspath(b) for b in binaries])
    totals = [0, 0, 0]
    for b in binaries:
        output, status = runs[os.path.abspath(b)]
        if status == -1:
            code = -1
        elif os.WIFSIGNALED(status):
            code = -os.WTERMSIG(status)
        else:
            code = os.WEXITSTATUS(status)
        name = os.path.basename(b) + " [qemu-tcg]"
        for i, n in enumerate(parse_tap(name, output, code)):
            totals[i] += n
        if code == -1:
            print(runs[None][0][-3000:])        # the end of the console log
    return totals


def run_bench(build, program):
    """Print a benchmark's output: natively with MPK, else in the guest."""
    if cpu_has_mpk():
        return subprocess.run([program]).returncode
    if qemu_guest.available(build) is None:
        print("bench: skipped: no pku/ospke and no guest kernel")
        return 0
    print("this CPU has no pku/ospke: running in a QEMU guest with emulated "
          "PKU; the figures are not hardware costs")
    output, status = qemu_guest.run(build, [os.path.abspath(program)])[
        os.path.abspath(program)]
    print(output, end="")
    return 0 if status == 0 else 1


def run_pytest(build):
    """Return (passed, failed, skipped) of the integration suite."""
    # NGINX prefixes of earlier runs (tests/lib/mpktls.py work_dir)
    shutil.rmtree(os.path.join(build, "tests", "run"), ignore_errors=True)
    report = os.path.join(build, "tests", "pytest.xml")
    table = os.path.join(build, "tests", "attack-table.txt")
    os.makedirs(os.path.dirname(report), exist_ok=True)
    for stale in (report, table):
        if os.path.exists(stale):
            os.unlink(stale)
    cmd = ["/usr/bin/python3", "-m", "pytest", "-rs", "-q",
           "-p", "no:cacheprovider", f"--junitxml={report}",
           os.path.join(HERE, "integration"), os.path.join(HERE, "attacks")]
    proc = subprocess.run(cmd, cwd=os.path.dirname(HERE))
    if os.path.exists(table):       # tests/attacks: the classes, off and on
        print("\nattack suite (tests/attacks), inside NGINX workers:")
        with open(table) as f:
            print(f.read())
    if not os.path.exists(report):
        print(f"pytest wrote no report (exit {proc.returncode})")
        return 0, 1, 0
    tests = errors = failures = skipped = 0
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests += int(suite.get("tests", 0))
        errors += int(suite.get("errors", 0))
        failures += int(suite.get("failures", 0))
        skipped += int(suite.get("skipped", 0))
    failed = errors + failures
    if proc.returncode not in (0, 1) and failed == 0:
        failed = 1                  # pytest itself broke (usage, internal)
    return tests - failed - skipped, failed, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--mpk", nargs="*", default=[],
                    help="unit tests that need MPK hardware")
    ap.add_argument("--bench", help="run this benchmark instead of tests")
    ap.add_argument("units", nargs="*")
    args = ap.parse_args()

    if args.bench:
        return run_bench(args.build, args.bench)

    totals = [0, 0, 0]
    for unit in args.units:
        if unit in args.mpk:
            continue
        for i, n in enumerate(run_unit(unit)):
            totals[i] += n
    for i, n in enumerate(run_mpk_units(args.build, args.mpk)):
        totals[i] += n
    for i, n in enumerate(run_pytest(os.path.abspath(args.build))):
        totals[i] += n

    passed, failed, skipped = totals
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
