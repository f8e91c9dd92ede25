"""Runs test_nginx_keystore.py in the QEMU guest (emulated PKU), where this
CPU has no protection keys: one guest boot for the whole file, then one
case here per case there (tests/lib/guest_suite.py), with its outcome.

On a CPU with pku/ospke, test_nginx_keystore.py runs natively and this
file is skipped.  The whole file takes about 8 minutes under TCG on a
2-vCPU host, the leak test (100,000 requests on 1,000 connections) about
100 s of it and the signal test (100,000 signals) about 130 s;
MPKTLS_LEAK_REQUESTS, MPKTLS_LEAK_CONNECTIONS and MPKTLS_SIGNALS, if set
here, change their figures in the guest too.
"""

import guest_suite

guest_suite.wrap(globals(), "test_nginx_keystore.py", timeout=2400,
                 passenv=("MPKTLS_LEAK_REQUESTS", "MPKTLS_LEAK_CONNECTIONS",
                          "MPKTLS_SIGNALS"))
