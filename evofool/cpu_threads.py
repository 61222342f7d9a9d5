"""How many CPU threads torch computes with when the experiment does not say
(``runtime.threads: null``).

torch's own default is one thread per physical core of the machine, also where this process
may use only some of them (``taskset``, a container's cpuset, a batch scheduler's slot); its
extra threads then contend for the allowed cores and every forward pass waits for the
slowest. evofool uses the cores this process may run on instead (or ``OMP_NUM_THREADS``,
where the environment sets it). It does not look at the
machine's load: the choice stays the same from one start to the next, and on a machine that
others keep busy ``runtime.threads: 1`` is the user's call (docs/BENCHMARKS.md has the
figures)."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), where the OS says."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when the environment sets it (as torch itself honours it), else
    the usable cores."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()
