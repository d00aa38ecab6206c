"""The live self-check (the last cell of every chapter): scores, messages, no test code shown."""

from __future__ import annotations

import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from autograder.selfcheck import (MESSAGE_LIMIT, TABLE_WIDTH, Report, TestResult, chapter_tests, failure_message,
                                  run_self_check, self_check)
from notebooks import CHAPTERS, exercises, hidden_lines, solution_notebook


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_nothing_done_scores_zero_with_messages_only(chapter, capsys):
    report = run_self_check(chapter.slug, {})
    assert report.total == 0 and report.max_total > 0
    hidden = [line for k, t in chapter_tests(chapter.slug).items() if not k.startswith("__")
              for line in hidden_lines(t["source"])]
    self_check(chapter.slug, {})
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "total" in printed
    assert not [line for line in hidden if line in printed]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_each_solved_exercise_earns_its_points(chapter):
    """Exercises are scored one by one: solving only the first earns only its points."""
    namespace: dict = {}
    first = exercises(chapter)[0][0]
    for cell in solution_notebook(chapter).cells:  # the cells a student runs up to the first answer
        if cell.cell_type == "code" and not cell.metadata.get("buildgpt"):
            exec(strip_markers(cell.source, SOLUTION_MARKERS), namespace)
            if nbgrader_meta(cell).get("grade_id") == first:
                break
    report = run_self_check(chapter.slug, namespace)
    scores = report.by_exercise()
    assert scores[first] > 0, report.table()


def test_self_check_is_quiet_while_grading(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    self_check(CHAPTERS[0].slug, {})
    assert "skipped" in capsys.readouterr().out


def test_unknown_chapter_is_one_sentence(capsys):
    self_check("42-nope", {})
    assert capsys.readouterr().out.startswith("Unknown chapter '42-nope'")


def test_long_messages_wrap_at_word_boundaries_and_lose_nothing():
    words = [f"word{i}" for i in range(80)] + ["transpose(-2, -1)", "instead", "of", "k.T"]
    message = failure_message("AssertionError", " ".join(words))
    assert message.endswith("k.T"), "a message under the limit keeps its last words (the advice)"
    report = Report("00-pytorch", [TestResult("ex-00-long-name", "test-00-long-name", 0, 2, message),
                                   TestResult("ex-00-x", "test-00-x", 1, 1)])
    lines = report.table().splitlines()
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    printed = " ".join(line.strip() for line in lines)
    assert " ".join(words) in printed, "wrapping must break between words, never inside one"
    cut = failure_message("ValueError", "x" * 10 + " " + "tensor(" * 400)
    assert len(cut) <= MESSAGE_LIMIT and cut.endswith("...")
    assert failure_message("ValueError", " ".join(["abcdefg"] * 200)).endswith("abcdefg...")
