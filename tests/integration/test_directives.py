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


@pytest.mark.parametrize("block,line,message", [
    ("server", "keystore maybe;",
     'invalid value "maybe" in "keystore" directive, it must be "on" or "off"'),
    ("http", "keystore;", 'invalid number of arguments in "keystore" directive'),
    ("server", "location / { keystore on; }",
     '"keystore" directive is not allowed here'),
    ("server", "keystore on; keystore off;", '"keystore" directive is duplicate'),
])
def test_keystore_bad_config_rejected(nginx_factory, block, line, message):
    n = nginx_factory(**{block + "_extra": "    %s\n" % line})
    r = n.test_config()
    assert r.returncode == 1
    assert "%s in %s:" % (message, n.conf) in r.stderr
    assert "test failed" in r.stderr


def test_server_with_keystore_on_serves(nginx_factory, cert):
    """Until the keystore exists the flag changes nothing: still serves."""
    from test_https import https_get
    n = nginx_factory(http_extra="    keystore on;\n").start()
    assert https_get(n.port, cert[0], "TLSv1.3")[1] == 200
