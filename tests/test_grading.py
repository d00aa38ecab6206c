"""Real nbgrader, end to end, as an instructor runs it: `python -m autograder grade` on a folder
of submissions, and `python -m autograder check` agreeing with it on every exercise."""

from __future__ import annotations

import csv
import html
import re
import subprocess
import sys

import nbformat
import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from notebooks import CHAPTERS, ROOT, exercises, hidden_lines

CHAPTER = CHAPTERS[0]  # chapter 0 proves the pipeline; every chapter shares it


def autograder(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True)


def submission(solved: set[str]):
    """The released notebook with the exercises in `solved` answered as a student would."""
    nb = nbformat.read(CHAPTER.student_notebook, as_version=4)
    answers = dict(exercises(CHAPTER))
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in solved:
            cell.source = strip_markers(answers[grade_id], SOLUTION_MARKERS)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    ids = [e for e, _ in exercises(CHAPTER)]
    half = set(ids[: len(ids) // 2])
    base = tmp_path_factory.mktemp("class")
    subs = base / "submissions"
    subs.mkdir()
    # Names as a class has them: two in Chinese (they once shared one id and crashed the batch),
    # accents, a space. Each must keep its own grade, under its own name.
    cases = {"perfect": set(ids), "untouched": set(), "half": half, "张伟": set(ids), "王芳": half,
             "José Núñez": set()}
    for student, solved in cases.items():
        (subs / student).mkdir()
        nbformat.write(submission(solved), subs / student / f"{CHAPTER.slug}.ipynb")
    (subs / "broken").mkdir()
    (subs / "broken" / f"{CHAPTER.slug}.ipynb").write_text("{ this is not json")
    out = base / "grading"
    # the README's command as an instructor types it: relative folders, from the folder that holds them
    result = autograder("grade", "submissions", "--out", "grading/", cwd=base)
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    return {"subs": subs, "out": out, "result": result, "rows": rows, "cases": cases}


def points(test_id_or_exercise: str) -> float:
    from autograder.selfcheck import chapter_tests

    tests = chapter_tests(CHAPTER.slug)
    return sum(t["points"] for k, t in tests.items() if not k.startswith("__") and t["exercise"] == test_id_or_exercise)


def test_grade_scores_each_submission_exactly(graded):
    rows, cases = graded["rows"], graded["cases"]
    max_total = sum(points(e) for e, _ in exercises(CHAPTER))
    for student, solved in cases.items():
        row = rows[student]
        assert row["status"] == "graded", row
        assert float(row["max"]) == max_total
        assert float(row["total"]) == sum(points(e) for e in solved), f"{student}: {row}"
        for exercise, _ in exercises(CHAPTER):
            expected = points(exercise) if exercise in solved else 0
            assert float(row[exercise]) == expected, f"{student}, {exercise}: got {row[exercise]}, expected {expected}"


def test_nbgrader_export_shows_the_students_own_names(graded):
    course = graded["out"] / "course"
    result = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(graded["out"] / "export.csv")],
                            cwd=course, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((graded["out"] / "export.csv").open(encoding="utf-8")))
    shown = {r["first_name"] or r["student_id"] for r in rows if r["assignment"] == CHAPTER.slug}
    assert {"张伟", "王芳", "José Núñez", "perfect"} <= shown, shown


def test_broken_submission_is_reported_not_lost(graded):
    result, rows = graded["result"], graded["rows"]
    assert result.returncode == 1, "a submission that could not be graded makes the exit code non-zero"
    assert rows["broken"]["status"].startswith("not graded: it is not a notebook")
    assert "broken" in (graded["out"] / "report.txt").read_text()
    assert "Traceback" not in result.stdout + result.stderr


def test_feedback_hides_hidden_tests(graded):
    from autograder.selfcheck import chapter_tests

    hidden = [line for k, t in chapter_tests(CHAPTER.slug).items() if not k.startswith("__")
              for line in hidden_lines(t["source"])]
    assert hidden, "chapter 0 has hidden tests"
    for student in graded["cases"]:
        page = (graded["out"] / "feedback" / student / f"{CHAPTER.slug}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{student}'s feedback shows hidden test code: {leaked[:2]}"


@pytest.mark.parametrize("student", ["perfect", "untouched", "half"])
def test_check_agrees_with_grade(graded, student):
    from autograder.selfcheck import check_notebook

    report = check_notebook(graded["subs"] / student / f"{CHAPTER.slug}.ipynb")
    row = graded["rows"][student]
    for exercise, got in report.by_exercise().items():
        assert got == float(row[exercise]), f"{student}, {exercise}: check says {got}, grade says {row[exercise]}"
    assert report.total == float(row["total"])
    for r in report.results:  # a failure is shown by its message, never by the test's code
        assert "assert " not in r.message and "### " not in r.message


def test_missing_submissions_folder_is_one_sentence(tmp_path):
    result = autograder("grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_rejects_a_file_that_is_not_a_notebook(tmp_path):
    bad = tmp_path / f"{CHAPTER.slug}.ipynb"
    bad.write_text("not json at all")
    result = autograder("check", str(bad))
    assert result.returncode == 2 and "is not a notebook" in result.stderr and "Traceback" not in result.stderr


def test_unknown_chapter_is_one_sentence(tmp_path):
    result = autograder("release", "42-nope", "--check")
    assert result.returncode == 2 and "Unknown chapter '42-nope'" in result.stderr
    nb = tmp_path / "homework.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), nb)
    result = autograder("check", str(nb))
    assert result.returncode == 2 and "Cannot tell which chapter" in result.stderr and "Traceback" not in result.stderr
