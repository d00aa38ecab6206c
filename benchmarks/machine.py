"""What every benchmark prints beside its timings: how busy the machine was."""

import os


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, e.g. "0.94 1.63 2.63" ("n/a" where the OS has none)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"
