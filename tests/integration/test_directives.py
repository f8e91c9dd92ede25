"""`nginx -t` on the keystore module's directive: `keystore on | off;` in
http and server blocks, NGINX's usual errors otherwise.

Whether `keystore on` is accepted depends on the machine: where the
keystore cannot run (a CPU without pku/ospke, a kernel older than 6.12),
NGINX refuses it with the platform's reason and `keystore off` is the
control; on a CPU with protection keys (or in the QEMU guest) it is
accepted.  What `keystore on` does is test_nginx_keystore.py's subject."""

import os
import re

import pytest

import mpktls
import qemu_guest
from test_https import https_get

KERNEL_MIN = (6, 12)


def platform_refusal():
    """The start of the reason NGINX must give for refusing keystore on
    here, or None where it must accept it."""
    if not qemu_guest.cpu_has_pku():
        return "the CPU lacks"
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if (int(m.group(1)), int(m.group(2))) < KERNEL_MIN:
        return "kernel %s is older than" % os.uname().release
    return None


def make(cert, value, where):
    """NGINX with "keystore VALUE;" in the http or server block (the key
    named as keystore on needs it)."""
    line = "    keystore %s;\n" % value
    return mpktls.Nginx(cert[0], mpktls.key_ref(cert[1], value == "on"),
                        **{where + "_extra": line})


def platform_message(n, why):
    line = n.read_conf().split("\n").index("    keystore on;") + 1
    return ('[emerg] "keystore on" cannot be enabled: %s' % why,
            '; use "keystore off" on this machine in %s:%d' % (n.conf, line))


@pytest.mark.parametrize("where", ["http", "server"])
@pytest.mark.parametrize("value", ["on", "off"])
def test_keystore_flag(cert, where, value):
    """keystore off is always accepted; keystore on only where the
    keystore can run, and refused with the platform's reason elsewhere."""
    n = make(cert, value, where)
    r = n.test_config()
    why = platform_refusal()
    if value == "on" and why:
        assert r.returncode == 1, r.stderr
        for part in platform_message(n, why):
            assert part in r.stderr, r.stderr
        assert "test failed" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "test is successful" in r.stderr


@pytest.mark.parametrize("block,line,message", [
    ("server", "keystore maybe;",
     'invalid value "maybe" in "keystore" directive, it must be "on" or "off"'),
    ("http", "keystore;", 'invalid number of arguments in "keystore" directive'),
    ("server", "location / { keystore on; }",
     '"keystore" directive is not allowed here'),
    ("server", "keystore off; keystore on;",
     '"keystore" directive is duplicate'),
])
def test_keystore_bad_config_rejected(nginx_factory, block, line, message):
    n = nginx_factory(**{block + "_extra": "    %s\n" % line})
    r = n.test_config()
    assert r.returncode == 1
    assert "%s in %s:" % (message, n.conf) in r.stderr
    assert "test failed" in r.stderr


STATUS = "        location = /ks { keystore_status; }\n"


@pytest.mark.parametrize("value", ["on", "off"])
def test_start(cert, value):
    """Starting NGINX (not just -t): with keystore off it serves and its
    keystore_status says off.  With keystore on it refuses to start where
    the keystore cannot run (exit code 1, the platform's reason), and
    elsewhere serves with the keystore on."""
    n = make(cert, value, "http")
    n.write_conf(n.read_conf().replace("        root ",
                                       STATUS + "        root "))
    why = platform_refusal()
    try:
        if value == "on" and why:
            with pytest.raises(RuntimeError) as e:
                n.start(timeout=60)
            assert n.proc.returncode == 1
            for part in platform_message(n, why):
                assert part in str(e.value), str(e.value)
            return
        n.start(timeout=180)
        assert https_get(n.port, cert[0], "TLSv1.3")[1] == 200
        _, status, body = https_get(n.port, cert[0], "TLSv1.3", "/ks")
        st = mpktls.parse_status(body.decode())
        assert status == 200 and st["keystore"] == value, st
    finally:
        n.stop()
