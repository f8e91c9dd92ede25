"""A pytest file that needs MPK, run in the QEMU guest where this CPU has
none: one guest boot for the whole file, and on the host one case per case
of the file, with its outcome there (passed, failed with the guest's
message, skipped or xfailed with the reason).

The file itself (the suite) starts with

    import guest_suite
    guest_suite.skip_without_mpk("test_x_guest.py")

so that it runs natively on a CPU with pku/ospke, and otherwise skips as a
whole (one skip), except when the wrapper collects it.  The wrapper is

    import guest_suite
    guest_suite.wrap(globals(), "test_x.py", timeout=1800)

It collects the suite's case names on the host (`pytest --collect-only`
with COLLECT_ENV set, so the suite must import and parametrize without
MPK), runs the suite once in the guest (qemu_guest.run_pytest) and defines
in the wrapper's module:

- test_guest_suite_ran: the guest's pytest ran to its end and reported
  exactly the cases collected here;
- test_in_guest[CASE]: one per case, with that case's outcome.

Selecting some wrapper cases (-k, node ids) runs only those in the guest.
The wrapper skips as a whole on a CPU with pku (the suite runs natively)
and where there is no guest (qemu_guest.command_unavailable says why).
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import mpktls
import qemu_guest

COLLECT_ENV = "MPKTLS_GUEST_SUITE_COLLECT"


def skip_without_mpk(wrapper):
    """In a suite: skip the module unless this CPU has protection keys (or
    the wrapper is collecting its cases)."""
    if qemu_guest.cpu_has_pku() or os.environ.get(COLLECT_ENV) == "1":
        return
    pytest.skip("this CPU has no pku/ospke: %s runs this file in the QEMU "
                "guest" % wrapper, allow_module_level=True)


def collect(path):
    """The suite's case names ("test_x[id]", "Class::test_x[id]") as pytest
    collects them on the host."""
    env = dict(os.environ, **{COLLECT_ENV: "1"})
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only",
                        "-q", "-p", "no:cacheprovider", path],
                       cwd=mpktls.ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    names = [line.split("::", 1)[1] for line in r.stdout.splitlines()
             if "::" in line and line.split("::", 1)[0].endswith(".py")]
    if r.returncode != 0 or not names:
        raise RuntimeError("cannot collect %s (pytest exit %d):\n%s%s"
                           % (path, r.returncode, r.stdout[-3000:],
                              r.stderr[-3000:]))
    return names


def parse_junit(text, module):
    """{case name: (outcome, message, details)} from JUnit XML; outcome is
    "passed", "failed", "error", "skipped" or "xfailed".  Case names as
    collect() gives them (module: the suite's file name without .py)."""
    cases = {}
    for case in ET.fromstring(text).iter("testcase"):
        outcome, message, details = "passed", "", ""
        for child in case:
            if child.tag in ("failure", "error"):
                # a failing teardown after a passed call: both are kept
                if outcome in ("failed", "error"):
                    details += "\n" + (child.text or "")
                    continue
                outcome = "failed" if child.tag == "failure" else "error"
                message = child.get("message", "")
                details = child.text or ""
            elif child.tag == "skipped":
                outcome = ("xfailed" if child.get("type") == "pytest.xfail"
                           else "skipped")
                message = child.get("message", "")
        out = case.find("system-out")
        if out is not None and out.text:
            details = details + "\n" + out.text
        details = ("(%s s in the guest)\n%s" % (case.get("time", "?"),
                                                 details)).strip()
        classes = case.get("classname", "").split(".")
        inner = classes[classes.index(module) + 1:] if module in classes \
            else []
        cases["::".join(inner + [case.get("name")])] = (outcome, message,
                                                         details)
    return cases


def wrap(namespace, suite, timeout=1800, args=(), memory=2048,
         passenv=()):
    """Define the wrapper's fixture and cases in namespace (the wrapper
    module's globals()) for the suite file (next to the wrapper).
    passenv: names of environment variables handed to the guest's pytest
    where they are set here (the guest gets no other)."""
    here = os.path.dirname(os.path.abspath(namespace["__file__"]))
    path = os.path.join(here, suite)
    module = os.path.splitext(os.path.basename(suite))[0]
    if qemu_guest.cpu_has_pku():
        pytest.skip("this CPU has pku/ospke: %s runs natively" % suite,
                    allow_module_level=True)
    reason = qemu_guest.command_unavailable(mpktls.BUILD)
    if reason is not None:
        pytest.skip("no QEMU guest for %s: %s" % (suite, reason),
                    allow_module_level=True)
    names = collect(path)

    @pytest.fixture(scope="module")
    def guest_run(request):
        wanted = [item.callspec.params["name"]
                  for item in request.session.items
                  if item.module is request.module
                  and hasattr(item, "callspec")]
        if not wanted or set(wanted) == set(names):
            wanted, targets = names, [path]
        else:
            targets = ["%s::%s" % (path, n) for n in wanted]
        env = {k: os.environ[k] for k in passenv if k in os.environ}
        r = qemu_guest.run_pytest(
            mpktls.BUILD, targets[0], cwd=mpktls.ROOT, timeout=timeout,
            memory=memory, env=env,
            args=["-rxXs", "-o", "junit_logging=system-out", *args,
                  *targets[1:]])
        print("guest: boot %.1f s, pytest %.1f s, total %.1f s, status %s"
              % (r.boot_seconds, r.command_seconds, r.total_seconds,
                 r.status))
        print(r.output[-6000:])
        cases = parse_junit(r.junit, module) if r.junit else {}
        return r, cases, wanted

    def test_guest_suite_ran(guest_run):
        """The guest ran the file to its end and reported exactly the
        cases collected here."""
        r, cases, wanted = guest_run
        assert r.status in (0, 1), "pytest in the guest: status %s\n%s" % (
            r.status, r.output[-4000:] or r.console[-4000:])
        assert r.junit is not None, r.output[-4000:]
        assert set(cases) == set(wanted), (
            "missing in the guest: %s; unknown: %s"
            % (sorted(set(wanted) - set(cases)),
               sorted(set(cases) - set(wanted))))

    @pytest.mark.parametrize("name", names)
    def test_in_guest(guest_run, name):
        _, cases, _ = guest_run
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
            pytest.fail("%s in the guest: %s\n%s" % (outcome, message,
                                                     details),
                        pytrace=False)

    test_guest_suite_ran.__doc__ += " (%s)" % suite
    namespace.update(guest_run=guest_run,
                     test_guest_suite_ran=test_guest_suite_ran,
                     test_in_guest=test_in_guest)
