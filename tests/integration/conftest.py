"""Fixtures shared by the integration tests."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "lib"))

import mpktls  # noqa: E402


@pytest.fixture(scope="session")
def cert():
    """(cert_path, key_path) of a self-signed ECDSA P-256 server cert."""
    return mpktls.make_cert(mpktls.work_dir("certs"))


@pytest.fixture
def nginx_factory(cert):
    """Make NGINX instances with the test certificate; all are stopped at
    the end of the test."""
    made = []

    def make(**kwargs):
        n = mpktls.Nginx(cert[0], cert[1], **kwargs)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


@pytest.fixture
def nginx(nginx_factory):
    """A running NGINX with the default test configuration."""
    return nginx_factory().start()
