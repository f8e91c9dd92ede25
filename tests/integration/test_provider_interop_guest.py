"""Runs test_provider_interop.py in the QEMU guest (emulated PKU), where
this CPU has no protection keys: one guest boot for the whole file, then
one case here per case there (tests/lib/guest_suite.py), with its outcome:
passed, failed (with the guest's message), skipped or xfailed (with the
reason).

On a CPU with pku/ospke, test_provider_interop.py runs natively and this
file is skipped.
"""

import guest_suite

guest_suite.wrap(globals(), "test_provider_interop.py", timeout=900)
