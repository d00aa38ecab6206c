"""The course's autograder: release the student edition, grade with nbgrader, self-check.

Command line: `python -m autograder release | grade | check` (see `--help`).
In a notebook: `from autograder import self_check; self_check("00-pytorch", globals())`.
"""

from .selfcheck import self_check

__all__ = ["self_check"]
