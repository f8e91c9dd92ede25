"""`nginx -t` on the keystore module's directive: `keystore on | off;` in
http and server blocks, NGINX's usual errors otherwise."""

import pytest


@pytest.mark.parametrize("where", ["http", "server"])
@pytest.mark.parametrize("value", ["on", "off"])
def test_keystore_flag_accepted(nginx_factory, where, value):
    line = "    keystore %s;\n" % value
    n = nginx_factory(**{where + "_extra": line})
    r = n.test_config()
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def test_keystore_invalid_value_rejected(nginx_factory):
    n = nginx_factory(server_extra="    keystore maybe;\n")
    r = n.test_config()
    assert r.returncode == 1
    assert ('invalid value "maybe" in "keystore" directive, '
            'it must be "on" or "off" in %s:' % n.conf) in r.stderr
    assert "test failed" in r.stderr


def test_keystore_needs_one_argument(nginx_factory):
    n = nginx_factory(http_extra="    keystore;\n")
    r = n.test_config()
    assert r.returncode == 1
    assert 'invalid number of arguments in "keystore" directive' in r.stderr


def test_keystore_not_allowed_in_location(nginx_factory):
    n = nginx_factory(server_extra="    location / { keystore on; }\n")
    r = n.test_config()
    assert r.returncode == 1
    assert '"keystore" directive is not allowed here' in r.stderr


def test_keystore_duplicate_rejected(nginx_factory):
    n = nginx_factory(server_extra="    keystore on;\n    keystore off;\n")
    r = n.test_config()
    assert r.returncode == 1
    assert '"keystore" directive is duplicate' in r.stderr


def test_server_with_keystore_on_serves(nginx_factory, cert):
    """Until the keystore exists the flag changes nothing: still serves."""
    from test_https import https_get
    n = nginx_factory(http_extra="    keystore on;\n").start()
    assert https_get(n.port, cert[0], "TLSv1.3")[1] == 200
