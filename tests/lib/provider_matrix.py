"""The interop matrix of tests/integration/test_provider_interop.py, as
data, so that the wrapper that runs it in the QEMU guest
(test_provider_interop_guest.py) knows every case by name.

To cover a new group, suite or protocol version once the provider has it,
change the tables here: VERSIONS and GROUPS map a version or group to None
(the provider does it: the cells must pass, and the key-exposure test uses
it) or to the reason its cells are expected to fail (xfail, not strict: an
XPASS is the sign that the entry can be flipped).
"""

import pytest

FFDHE = ("FFDHE is not in the keystore: its raw secret reaches T marked as a "
         "token and the handshake fails closed; nginx -t is to reject it")

# protocol version: None if the provider does it, else why its cells fail
VERSIONS = {"TLSv1.3": None, "TLSv1.2": None}

# the suites of each version (TLS 1.2: those for the ECDSA test key)
SUITES = {
    "TLSv1.3": ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256"),
    "TLSv1.2": ("ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305"),
}
TLS13_SUITES = SUITES["TLSv1.3"]

GROUPS = {
    "X25519MLKEM768": None,
    "X25519": None,
    "secp256r1": None,
    "secp384r1": None,
    "secp521r1": None,
    "X448": None,
    "ffdhe2048": FFDHE,
}
SUPPORTED_GROUPS = tuple(g for g, why in GROUPS.items() if why is None)
# TLS 1.2 has no KEM groups, and FFDHE only with DHE suites (RSA keys)
TLS12_GROUPS = ("X25519", "secp256r1", "secp384r1", "secp521r1", "X448")


def groups_of(version):
    return tuple(GROUPS) if version == "TLSv1.3" else TLS12_GROUPS


CLIENTS = ("python", "s_client", "curl", "gnutls")

# KeyUpdate: which side sends which KeyUpdates.  Python's ssl and
# gnutls-cli cannot send one on request, but answer the server's
# "update_requested" with their own: both directions change keys.
KEY_UPDATE_CLIENTS = {"s_client": ("client", "server"),
                      "python": ("server",), "gnutls": ("server",)}

# HelloRetryRequest: the client sends a key share for `offer` only, the
# server takes only `group` (which the client also lists).
HRR_CASES = (
    ("s_client", "X25519", "X25519MLKEM768"),
    ("s_client", "X25519MLKEM768", "X25519"),
    ("s_client", "X448", "X25519"),
    ("curl", "secp256r1", "X25519"),
    ("gnutls", "X448", "X25519"),
)

EXPOSURE_MODES = ("keystore", "control")


def _marks(group, version="TLSv1.3"):
    why = VERSIONS[version] or GROUPS[group]
    return [pytest.mark.xfail(reason=why, strict=False)] if why else []


def handshake_params():
    return [pytest.param(version, client, suite, group,
                         marks=_marks(group, version),
                         id="%s-%s-%s-%s" % (version, client, suite, group))
            for version in VERSIONS for group in groups_of(version)
            for suite in SUITES[version] for client in CLIENTS]


def resumption_params():
    return [pytest.param(client, suite, id="%s-%s" % (client, suite))
            for suite in TLS13_SUITES for client in CLIENTS]


def key_update_params():
    return [pytest.param(client, suite, id="%s-%s" % (client, suite))
            for suite in TLS13_SUITES for client in KEY_UPDATE_CLIENTS]


def hrr_params():
    return [pytest.param(client, offer, group, marks=_marks(group),
                         id="%s-%s-to-%s" % (client, offer, group))
            for client, offer, group in HRR_CASES]


def exposure_params():
    return [pytest.param(m, id=m) for m in EXPOSURE_MODES]


# test function -> its parameters (None: not parametrized)
TESTS = {
    "test_provider_is_active": None,
    "test_handshake": handshake_params,
    "test_resumption": resumption_params,
    "test_key_update": key_update_params,
    "test_hello_retry_request": hrr_params,
    "test_seal_key_file_shared": None,
    "test_seal_key_file_refused": None,
    "test_exposure_session_secrets": exposure_params,
    "test_exposure_public_ivs": exposure_params,
    "test_exposure_server_private_key": exposure_params,
}


def case_names():
    """Every case's name as pytest reports it ("test_x[id]")."""
    names = []
    for test, params in TESTS.items():
        if params is None:
            names.append(test)
        else:
            names += ["%s[%s]" % (test, p.id) for p in params()]
    return names
