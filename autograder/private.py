"""Private tests: an instructor's own test cells, graded with the course's and never shipped.

The course's hidden tests travel with it (the self-check needs them), so a student who looks can
read them. An instructor who wants tests no student has seen keeps a folder of their own, one file
per chapter, named after it (`private/03-attention.py`), holding one dictionary:

    TESTS = {
        "ex-03-causal-mask": (2, '''
    import torch
    m = causal_mask(5)
    assert m.dtype == torch.bool, "the mask should be boolean"
    '''),
    }

Each entry adds a locked test cell, worth its points, right after the exercise's own test cell
(a list of (points, source) pairs adds several). The file is read, never run, by the grader's
process: only the test sources run, in the student's sandbox. Feedback shows that a private test
ran and whether it passed, never its code or its message.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .chapters import HIDDEN_MARKERS, Chapter, exercise_of, nbgrader_meta, test_metadata
from .errors import UserError

MARK = "__private_"  # test-03-mask__private_1: counted under ex-03-mask (see exercise_of)


@dataclass
class PrivateTest:
    exercise: str
    points: float
    source: str


def is_private(grade_id: str) -> bool:
    return MARK in (grade_id or "")


def load_private_tests(folder: Path, chapters: list[Chapter], exercises: dict[str, list[str]]) -> dict[str, list[PrivateTest]]:
    """chapter slug -> its private tests, from FOLDER/NN-slug.py files; a mistake is one sentence."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the folder that holds your private tests, one NN-slug.py per chapter.")
    slugs = {c.slug for c in chapters}
    found: dict[str, list[PrivateTest]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem not in slugs:
            raise UserError(f"{path.name} in {folder} names no chapter; name a file of private tests after its "
                            f"chapter, e.g. {sorted(slugs)[0]}.py.")
        tests = _read(path)
        for exercise, entries in tests.items():
            if exercise not in exercises[path.stem]:
                raise UserError(f"{path.name}: {exercise!r} is not an exercise of {path.stem}; "
                                f"use one of {', '.join(exercises[path.stem])}.")
            for points, source in entries:
                found.setdefault(path.stem, []).append(PrivateTest(exercise, float(points), source))
    return found


def _read(path: Path) -> dict[str, list[tuple[float, str]]]:
    where = f"{path.name}"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=path.name)
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise UserError(f"{where} is not valid Python ({exc.__class__.__name__}: {getattr(exc, 'msg', exc)}); fix it and grade again.")
    value = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TESTS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise UserError(f"{where}: TESTS must be a plain dictionary of strings and numbers "
                                "(it is read, not run); write each test's code as a string.") from None
    usage = 'TESTS = {"ex-NN-name": (points, "test code"), ...}'
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where} holds no TESTS dictionary; write {usage}.")
    tests = {}
    for exercise, entry in value.items():
        entries = entry if isinstance(entry, list) else [entry]
        for e in entries:
            ok = (isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], (int, float)) and not isinstance(e[0], bool)
                  and e[0] > 0 and isinstance(e[1], str) and e[1].strip())
            if not ok:
                raise UserError(f"{where}: the test of {exercise!r} must be (points > 0, \"test code\"); write {usage}.")
        tests[str(exercise)] = [(float(p), s) for p, s in entries]
    return tests


def add_private_tests(nb, tests: list[PrivateTest]) -> None:
    """Insert each private test as a locked test cell after its exercise's own test cell, its code
    between the hidden-test markers (so no release of it shows the code), in place."""
    counts: dict[str, int] = {}
    for test in tests:
        k = counts[test.exercise] = counts.get(test.exercise, 0) + 1
        anchor = max(i for i, c in enumerate(nb.cells)
                     if nbgrader_meta(c).get("grade") and exercise_of(nbgrader_meta(c)["grade_id"]) == test.exercise)
        grade_id = "test-" + test.exercise[len("ex-"):] + f"{MARK}{k}"
        body = f"{HIDDEN_MARKERS[0]}\n{test.source.strip()}\n{HIDDEN_MARKERS[1]}"
        cell = nbformat.v4.new_code_cell(body, metadata={"nbgrader": test_metadata(grade_id, test.points)})
        cell.id = grade_id.replace("_", "-")
        nb.cells.insert(anchor + 1, cell)
    digest = hashlib.sha256(repr([(t.exercise, t.points, t.source) for t in tests]).encode()).hexdigest()
    nb.metadata.setdefault("buildgpt", {})["private_tests_sha256"] = digest  # part of every run's key
