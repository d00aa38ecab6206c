"""An instructor's private tests: graded with the course's, counted under their exercise, never
shown in feedback, and a mistake in the file is one sentence."""

from __future__ import annotations

import csv
import html
import re
import subprocess
import sys

import nbformat
import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from notebooks import CHAPTERS, ROOT, exercises

CHAPTER = CHAPTERS[0]
PRIVATE = '''
TESTS = {
    "ex-00-context-windows": [
        (3, """
import torch
X, Y = context_windows(torch.arange(7), 6)
assert tuple(X.shape) == (1, 6), "one pair from 7 ids"
"""),
        (2, """
import torch
qq_private_x, _ = context_windows(torch.arange(9), 3)
assert qq_private_x.is_contiguous(), "XYZZY-secret: the windows should be a contiguous copy"
"""),
    ],
}
'''


def autograder(*args):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("subs")
    answers = dict(exercises(CHAPTER))
    nb = nbformat.read(CHAPTER.student_notebook, as_version=4)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") in answers:
            cell.source = strip_markers(answers[nbgrader_meta(cell)["grade_id"]], SOLUTION_MARKERS)
    (subs / "ada").mkdir()
    nbformat.write(nb, subs / "ada" / f"{CHAPTER.slug}.ipynb")
    private = tmp_path_factory.mktemp("private")
    (private / f"{CHAPTER.slug}.py").write_text(PRIVATE)
    out = tmp_path_factory.mktemp("out")
    result = autograder("grade", str(subs), "--out", str(out), "--private-tests", str(private), "--no-progress")
    return out, result


def test_private_tests_change_the_grade(graded):
    out, result = graded
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    # the course's own test (1 point) and the first private test (3) pass; the second (2) fails
    assert float(row["ex-00-context-windows"]) == 4, row
    assert float(row["max"]) == 10 + 3 + 2 and float(row["total"]) == 10 + 3, row
    assert row["status"] == "graded", "a student never sees 'test cell deleted' for a private test"


def test_private_tests_never_appear_in_feedback(graded):
    out, _ = graded
    page = (out / "feedback" / "ada" / f"{CHAPTER.slug}.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "private test of your instructor's" in text
    for secret in ("XYZZY", "qq_private_x", "torch.arange(7)", "one pair from 7 ids"):
        assert secret not in text, f"the feedback shows {secret!r} of a private test"
    report = (out / "report.txt").read_text(encoding="utf-8")
    assert "deleted" not in report


@pytest.mark.parametrize("content,says", [
    ("TESTS = {'ex-00-nope': (1, 'assert True')}", "is not an exercise of 00-pytorch"),
    ("TESTS = {'ex-00-context-windows': (0, 'assert True')}", "must be (points > 0"),
    ("TESTS = {'ex-00-context-windows': (1, open('/etc/passwd').read())}", "plain dictionary"),
    ("TESTS = [", "is not valid Python"),
])
def test_a_bad_private_tests_file_is_one_sentence(tmp_path, content, says):
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(nbformat.read(CHAPTER.student_notebook, as_version=4), tmp_path / "subs" / "ada" / f"{CHAPTER.slug}.ipynb")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / f"{CHAPTER.slug}.py").write_text(content)
    result = autograder("grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--private-tests", str(tmp_path / "private"))
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
