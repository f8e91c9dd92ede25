"""What was built: versions, the module, and where the pins live."""

import re
import subprocess

import mpktls


def config_mk():
    values = {}
    with open(mpktls.BUILD + "/config.mk") as f:
        for line in f:
            m = re.match(r"^(\w+) = (.*)$", line)
            if m:
                values[m.group(1)] = m.group(2)
    return values


def test_nginx_reports_pinned_openssl_and_module():
    out = subprocess.run([mpktls.NGINX, "-V"], capture_output=True,
                         text=True, check=True).stderr
    pins = config_mk()
    assert "nginx version: nginx/%s" % pins["NGINX_VERSION"] in out
    assert "built with OpenSSL %s " % pins["OPENSSL_VERSION"] in out
    assert pins["OPENSSL_VERSION"].startswith("3.5.")
    assert "--with-openssl=" in out
    assert re.search(r"--add-module=\S*/nginx-module\b", out)


def test_openssl_cli_is_the_pinned_build():
    out = subprocess.run([mpktls.OPENSSL, "version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("OpenSSL %s " % config_mk()["OPENSSL_VERSION"])


def test_nginx_links_openssl_statically():
    """The patched libssl is inside the binary, not the system's."""
    out = subprocess.run(["ldd", mpktls.NGINX], capture_output=True,
                         text=True).stdout
    assert "libssl" not in out and "libcrypto" not in out


def test_versions_are_pinned_in_one_place():
    pins = config_mk()
    files = subprocess.run(["git", "ls-files", "--cached", "--others",
                            "--exclude-standard"], cwd=mpktls.ROOT,
                           capture_output=True, text=True,
                           check=True).stdout.split()
    for version in (pins["OPENSSL_DEB_VERSION"], pins["NGINX_DEB_VERSION"]):
        holders = []
        for name in files:
            try:
                with open(mpktls.ROOT + "/" + name, errors="replace") as f:
                    if version in f.read():
                        holders.append(name)
            except (IsADirectoryError, FileNotFoundError):
                pass
        assert holders == ["configure"], (version, holders)
