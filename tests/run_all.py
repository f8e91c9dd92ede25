#!/usr/bin/python3
"""Run every test of mpk-tls and print one closing line.

    run_all.py --build DIR UNIT_TEST...

Runs each cmocka binary (TAP output), then the pytest integration suite
(tests/integration), and ends with

    N passed, N failed, N skipped

Exit status 0 only if nothing failed and something ran.  A unit binary that
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


def run_unit(binary):
    """Return (passed, failed, skipped) of one cmocka binary."""
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    proc = subprocess.run([binary], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    passed = failed = skipped = 0
    planned = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^1\.\.(\d+)$", line)
        if m:
            planned = int(m.group(1))
        elif re.match(r"^not ok \d+ # SKIP", line):
            skipped += 1
        elif re.match(r"^not ok \d+", line):
            failed += 1
        elif re.match(r"^ok \d+", line):
            passed += 1
    name = os.path.basename(binary)
    done = passed + failed + skipped
    if proc.returncode < 0 or planned is None or done != planned:
        print(f"{name}: ended with status {proc.returncode} after "
              f"{done} of {planned} tests")
        failed += 1
    if failed:
        print(proc.stdout)
    print(f"unit {name}: {passed} passed, {failed} failed, {skipped} skipped")
    return passed, failed, skipped


def run_pytest(build):
    """Return (passed, failed, skipped) of the integration suite."""
    # NGINX prefixes of earlier runs (tests/lib/mpktls.py work_dir)
    shutil.rmtree(os.path.join(build, "tests", "run"), ignore_errors=True)
    report = os.path.join(build, "tests", "pytest.xml")
    os.makedirs(os.path.dirname(report), exist_ok=True)
    if os.path.exists(report):
        os.unlink(report)
    cmd = ["/usr/bin/python3", "-m", "pytest", "-rs", "-q",
           "-p", "no:cacheprovider", f"--junitxml={report}",
           os.path.join(HERE, "integration")]
    proc = subprocess.run(cmd, cwd=os.path.dirname(HERE))
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
    ap.add_argument("units", nargs="*")
    args = ap.parse_args()

    totals = [0, 0, 0]
    for unit in args.units:
        for i, n in enumerate(run_unit(unit)):
            totals[i] += n
    for i, n in enumerate(run_pytest(os.path.abspath(args.build))):
        totals[i] += n

    passed, failed, skipped = totals
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
