"""Runs test_attacks.py in the QEMU guest (emulated PKU), where this CPU
has no protection keys: one guest boot for the whole file, then one case
here per case there (tests/lib/guest_suite.py), with its outcome.  The
guest's table of results goes to $BUILD/tests/attack-table.txt, which
`make test` prints.  About 2.5 minutes under TCG on a 2-vCPU host.

On a CPU with pku/ospke, test_attacks.py runs natively (and writes the
table itself) and this file is skipped.
"""

import os

import guest_suite
import mpktls

guest_suite.wrap(globals(), "test_attacks.py", timeout=1800)


def test_table_written(guest_run):
    """The guest's table (the output of its test_zz_table), saved for
    run_all.py to print."""
    _, cases, _ = guest_run
    outcome, _, details = cases.get("test_zz_table", ("missing", "", ""))
    assert outcome == "passed", details
    lines = [line for line in details.splitlines()
             if line[:1] in "#-" or line[:1].isdigit()]
    assert len(lines) > 1, details
    with open(os.path.join(mpktls.BUILD, "tests", "attack-table.txt"),
              "w") as f:
        f.write("\n".join(lines) + "\n")
