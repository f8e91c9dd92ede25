"""Whole scenarios in the QEMU guest with emulated PKU (qemu_guest.
run_command): the guest mounts this machine's root read-only and runs
servers, clients and pytest there.  Only where the CPU has no protection
keys and configure fetched the guest kernel; elsewhere skipped."""

import os
import textwrap
import xml.etree.ElementTree as ET

import pytest

import mpktls
import qemu_guest

BUILD = mpktls.BUILD

if qemu_guest.cpu_has_pku():
    pytest.skip("this CPU has pku/ospke: the MPK tests run natively, "
                "without the guest", allow_module_level=True)
_reason = qemu_guest.command_unavailable(BUILD)
if _reason is not None:
    pytest.skip("no QEMU guest: " + _reason, allow_module_level=True)


def guest(argv, **kwargs):
    """run_command with the console's end in the message of a failure."""
    r = qemu_guest.run_command(BUILD, argv, cwd=mpktls.ROOT, **kwargs)
    print("guest: boot %.1f s, command %.1f s, total %.1f s"
          % (r.boot_seconds, r.command_seconds, r.total_seconds))
    return r


def python_in_guest(script, **kwargs):
    return guest(["/usr/bin/python3", "-c", textwrap.dedent(script)],
                 **kwargs)


def test_guest_cpu_has_pku():
    status, output = guest(["grep", "-w", "-m1", "-o", "pku",
                            "/proc/cpuinfo"])
    assert (status, output) == (0, "pku\n")


# In the guest: a certificate, NGINX (the tests' own helper and
# configuration) and curl against it; prints one line of results.
NGINX_CURL = """
    import subprocess, sys, time
    sys.path.insert(0, %(lib)r)
    import mpktls
    cert, key = mpktls.make_cert(mpktls.work_dir("certs"))
    nginx = mpktls.Nginx(cert, key).start(timeout=60)
    try:
        t = time.monotonic()
        r = subprocess.run(["curl", "-sS", "--cacert", cert,
                            nginx.url("/index.html")],
                           capture_output=True, text=True, timeout=120)
        print("curl", r.returncode, r.stderr.strip(), "%%.2f s"
              %% (time.monotonic() - t))
        with open(mpktls.SITE + "/index.html") as f:
            print("same body", r.stdout == f.read())
        print(nginx.error_log())
    finally:
        nginx.stop()
"""


def test_nginx_serves_curl_in_guest():
    before = sorted(os.listdir(os.path.join(BUILD, "tests", "run")))
    r = python_in_guest(NGINX_CURL % {"lib": os.path.join(mpktls.ROOT,
                                                          "tests", "lib")},
                        timeout=300)
    assert r.status == 0, r.output
    assert "curl 0 " in r.output, r.output
    assert "same body True" in r.output, r.output
    # the guest's NGINX prefix and certificates stayed in guest memory
    assert sorted(os.listdir(os.path.join(BUILD, "tests", "run"))) == before


def test_openssl_and_gnutls_in_guest():
    """`openssl s_server` with `openssl s_client` and `gnutls-cli`."""
    script = """
        set -e
        d=$(mktemp -d)
        O=%(openssl)s
        $O req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
            -keyout $d/k.pem -out $d/c.pem -days 1 -subj /CN=localhost \\
            -addext subjectAltName=DNS:localhost 2>/dev/null
        $O s_server -accept 127.0.0.1:4433 -cert $d/c.pem -key $d/k.pem \\
            -www -quiet &
        server=$!
        i=0
        until $O s_client -connect 127.0.0.1:4433 -CAfile $d/c.pem \\
                -verify_return_error -brief </dev/null >$d/s_client 2>&1; do
            i=$((i + 1)); [ $i -lt 100 ] || exit 9; sleep 0.2
        done
        cat $d/s_client
        gnutls-cli --x509cafile $d/c.pem --port 4433 localhost </dev/null \\
            2>&1 | grep -E 'Handshake was completed|Description'
        kill $server
    """ % {"openssl": mpktls.OPENSSL}
    status, output = guest(["sh", "-c", textwrap.dedent(script)],
                           timeout=300)
    assert status == 0, output
    assert "Verification: OK" in output, output
    assert "Handshake was completed" in output, output


def test_pytest_in_guest_reports_junit(tmp_path):
    """A pytest file from the host's /tmp runs in the guest (where the CPU
    has pku) and its JUnit XML reaches the host."""
    test_file = tmp_path / "test_in_guest.py"
    test_file.write_text(textwrap.dedent("""
        import os, pytest

        def test_guest_cpu_has_pku():
            with open("/proc/cpuinfo") as f:
                assert " pku " in f.read()

        def test_fails_on_purpose():
            assert 1 == 2

        @pytest.mark.skip(reason="on purpose")
        def test_skipped():
            pass
    """))
    r = qemu_guest.run_pytest(BUILD, str(test_file), cwd=str(tmp_path),
                              timeout=300)
    print(r.output)
    assert r.status == 1, r.output          # one test fails
    assert r.junit is not None, r.output
    suite = next(ET.fromstring(r.junit).iter("testsuite"))
    assert (suite.get("tests"), suite.get("failures"),
            suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases["test_guest_cpu_has_pku"]) == []      # passed
    assert cases["test_fails_on_purpose"].find("failure") is not None


def test_host_is_read_only_in_guest(tmp_path):
    """/etc and the repository refuse writes; build/tests, /tmp and the
    like take them in guest memory; only outdir reaches the host."""
    name = "mpktls-guest-probe-%d" % os.getpid()
    targets = {
        "etc": os.path.join("/etc", name),
        "repo": os.path.join(mpktls.ROOT, name),
        "build": os.path.join(BUILD, name),
        "tests": os.path.join(BUILD, "tests", name),
        "tmp": os.path.join("/tmp", name),
        "out": os.path.join(str(tmp_path), name),
    }
    script = "".join(
        "if echo x > %s; then echo '%s: written'; else echo '%s: refused'; "
        "fi\n" % (path, key, key) for key, path in targets.items())
    status, output = guest(["sh", "-c", script], outdir=str(tmp_path))
    assert status == 0, output
    for key in ("etc", "repo", "build"):
        assert "%s: refused" % key in output, output
        assert "Read-only file system" in output, output
    for key in ("tests", "tmp", "out"):
        assert "%s: written" % key in output, output
    for key, path in targets.items():
        assert os.path.exists(path) == (key == "out"), path


def test_timeout_kills_the_command():
    r = guest(["sh", "-c", "echo started; sleep 600"], timeout=5)
    assert r.status is None and r.timed_out
    assert r.output == "started\n"
