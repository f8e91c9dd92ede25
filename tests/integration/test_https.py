"""HTTPS through the built NGINX and patched OpenSSL, with real clients:
Python's ssl module, curl and the built `openssl s_client`."""

import os
import socket
import ssl
import subprocess

import pytest

import mpktls

INDEX = os.path.join(mpktls.SITE, "index.html")
VERSIONS = {"TLSv1.3": ssl.TLSVersion.TLSv1_3,
            "TLSv1.2": ssl.TLSVersion.TLSv1_2}


def expected_body():
    with open(INDEX, "rb") as f:
        return f.read()


def https_get(port, cafile, version, path="/index.html"):
    """GET over exactly one TLS version; returns (version, status, body)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n"
                        b"Host: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            negotiated = tls.version()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return negotiated, status, body


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_python_ssl_get(nginx, cert, version):
    negotiated, status, body = https_get(nginx.port, cert[0], version)
    assert negotiated == version
    assert status == 200
    assert body == expected_body()


def test_python_ssl_missing_file_is_404(nginx, cert):
    _, status, _ = https_get(nginx.port, cert[0], "TLSv1.3", "/no-such-file")
    assert status == 404


def curl(nginx, cert, *flags, write_out="%{http_code}"):
    """curl a file with extra flags; returns (body, the -w output)."""
    out = subprocess.run(
        ["curl", "-sS", *flags, "--cacert", cert[0],
         "--resolve", "localhost:%d:127.0.0.1" % nginx.port,
         "-w", "\n" + write_out, nginx.url("/index.html")],
        capture_output=True, check=True)
    body, _, tail = out.stdout.rpartition(b"\n")
    return body, tail


@pytest.mark.parametrize("flags", [["--tlsv1.3", "--tls-max", "1.3"],
                                   ["--tlsv1.2", "--tls-max", "1.2"]])
def test_curl_get(nginx, cert, flags):
    body, code = curl(nginx, cert, "--http1.1", *flags)
    assert code == b"200"
    assert body == expected_body()


def test_curl_http2(nginx, cert):
    body, tail = curl(nginx, cert, "--http2",
                      write_out="%{http_version} %{http_code}")
    assert tail == b"2 200"
    assert body == expected_body()


@pytest.mark.parametrize("flag,version", [("-tls1_3", "TLSv1.3"),
                                          ("-tls1_2", "TLSv1.2")])
def test_openssl_s_client_get(nginx, cert, flag, version):
    request = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n"
    out = subprocess.run(
        [mpktls.OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % nginx.port,
         flag, "-servername", "localhost", "-CAfile", cert[0],
         "-verify_return_error", "-ign_eof", "-quiet"],
        input=request, capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert out.stdout.startswith(b"HTTP/1.1 200 OK")
    assert out.stdout.endswith(expected_body())

    # the session summary names the protocol that was used
    out = subprocess.run(
        [mpktls.OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % nginx.port,
         flag, "-servername", "localhost", "-CAfile", cert[0],
         "-verify_return_error", "-brief"],
        input=b"", capture_output=True, timeout=20)
    assert out.returncode == 0
    assert ("Protocol version: " + version) in out.stderr.decode()


def test_two_workers_serve(nginx_factory, cert):
    n = nginx_factory(workers=2).start()
    for _ in range(20):
        assert https_get(n.port, cert[0], "TLSv1.3")[1] == 200
