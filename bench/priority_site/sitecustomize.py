"""Imported by every Python process that bench/priority.sh starts (it is on their PYTHONPATH): with
BENCH_AUTOGROUP_NICE set, the process gives its session's autogroup that nice value. torchrun starts
each worker in a session of its own, which would otherwise share the CPUs equally with every other
session on the machine (see bench/priority.sh)."""

import os

if os.environ.get("BENCH_AUTOGROUP_NICE"):
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(os.environ["BENCH_AUTOGROUP_NICE"])
    except OSError:
        pass
