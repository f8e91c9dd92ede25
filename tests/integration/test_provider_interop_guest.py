"""Runs test_provider_interop.py in the QEMU guest (emulated PKU), where
this CPU has no protection keys: one guest boot for the whole file, then
one case here per case there (the names come from tests/lib/
provider_matrix.py), with its outcome: passed, failed (with the guest's
message), skipped or xfailed (with the reason).

On a CPU with pku/ospke, test_provider_interop.py runs natively and this
file is skipped.
"""

import os
import xml.etree.ElementTree as ET

import pytest

import mpktls
import provider_matrix
import qemu_guest

BUILD = mpktls.BUILD
SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "test_provider_interop.py")

if qemu_guest.cpu_has_pku():
    pytest.skip("this CPU has pku/ospke: test_provider_interop.py runs "
                "natively", allow_module_level=True)
_reason = qemu_guest.command_unavailable(BUILD)
if _reason is not None:
    pytest.skip("no QEMU guest for the provider interop suite: " + _reason,
                allow_module_level=True)


def parse_junit(text):
    """{case name: (outcome, message, details)}; outcome is "passed",
    "failed", "error", "skipped" or "xfailed"."""
    cases = {}
    for case in ET.fromstring(text).iter("testcase"):
        outcome, message, details = "passed", "", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = child.get("message", "")
                details = child.text or ""
            elif child.tag == "skipped":
                outcome = ("xfailed" if child.get("type") == "pytest.xfail"
                           else "skipped")
                message = child.get("message", "")
        out = case.find("system-out")
        if out is not None and out.text:
            details = (details + "\n" + out.text).strip()
        cases[case.get("name")] = (outcome, message, details)
    return cases


@pytest.fixture(scope="module")
def guest_run():
    r = qemu_guest.run_pytest(
        BUILD, SUITE, cwd=mpktls.ROOT, timeout=900,
        args=["-rxXs", "-o", "junit_logging=system-out"])
    print("guest: boot %.1f s, pytest %.1f s, total %.1f s, status %s"
          % (r.boot_seconds, r.command_seconds, r.total_seconds, r.status))
    print(r.output[-6000:])
    cases = parse_junit(r.junit) if r.junit else {}
    return r, cases


def test_guest_suite_ran(guest_run):
    """The guest ran the file to its end and reported exactly the cases
    of the matrix."""
    r, cases = guest_run
    assert r.status in (0, 1), "pytest in the guest: status %s\n%s" % (
        r.status, r.output[-4000:] or r.console[-4000:])
    assert r.junit is not None, r.output[-4000:]
    expected = set(provider_matrix.case_names())
    assert set(cases) == expected, (
        "missing in the guest: %s; unknown: %s"
        % (sorted(expected - set(cases)), sorted(set(cases) - expected)))


@pytest.mark.parametrize("name", provider_matrix.case_names())
def test_in_guest(guest_run, name):
    _, cases = guest_run
    if name not in cases:
        pytest.fail("not reported by the guest")
    outcome, message, details = cases[name]
    if details:
        print(details)
    if outcome == "skipped":
        pytest.skip(message)
    if outcome == "xfailed":
        pytest.xfail(message)
    if outcome in ("failed", "error"):
        pytest.fail("%s in the guest: %s\n%s" % (outcome, message, details),
                    pytrace=False)
