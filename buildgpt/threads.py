"""How many CPU threads PyTorch should use: one rule for every command and chapter.

PyTorch splits a CPU operation across threads that wait for each other at its end. On an idle
machine one thread per physical core is fastest. On a machine whose cores other programs already
keep busy, one descheduled thread stalls all the others at every operation, and a single thread
is several times faster (generating 200 tokens took 88 s with PyTorch's default and 17.6 s with
one thread on a busy two-core machine).
"""

from __future__ import annotations

import os

THREADS_HELP = ("CPU threads for PyTorch (default: $BUILDGPT_THREADS if set; else 1 if the 1-minute load average "
                "shows the cores already busy, otherwise one per physical core; buildgpt.threads.default_threads)")
THREADS_ENV = "BUILDGPT_THREADS"  # a number set here wins over the load rule (the grader sets it to 1 per kernel)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (containers, taskset)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """The number in $BUILDGPT_THREADS when it is set (a program that runs many notebooks or commands
    side by side, like the grader, decides for them); otherwise 1 if the 1-minute load average is at
    least the number of usable CPUs (the cores are busy), else the number of physical cores
    (hyper-threads do not help matrix products), at most the usable CPUs. Raises ValueError (one
    sentence) when $BUILDGPT_THREADS is not a whole number of at least 1."""
    chosen = os.environ.get(THREADS_ENV, "").strip()
    if chosen:
        if not chosen.isdigit() or int(chosen) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1; got {chosen!r}")
        return int(chosen)
    cpus = _usable_cpus()
    try:
        if os.getloadavg()[0] >= cpus:
            return 1
    except (AttributeError, OSError):  # no load average (Windows): assume the machine is ours
        pass
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or cpus
    except ImportError:
        physical = cpus
    return max(1, min(physical, cpus))


def set_threads(threads: int | None = None) -> int:
    """torch.set_num_threads(threads, or default_threads() if None); returns the number set.

    Raises ValueError for a number below 1.
    """
    import torch

    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a whole number of at least 1; got {threads!r}")
    torch.set_num_threads(threads)
    return threads
