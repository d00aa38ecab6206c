"""The course's autograder: release the student edition, grade with nbgrader, self-check.

Command line: `python -m autograder release | grade | check` (see `--help`).
In a notebook: `from autograder import self_check; self_check("00-pytorch", globals())`.
"""


def self_check(chapter: str, namespace: dict) -> None:
    """Print the score of every exercise of `chapter`, testing the names in `namespace`."""
    from .selfcheck import self_check as run

    run(chapter, namespace)


__all__ = ["self_check"]
