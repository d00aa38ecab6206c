"""Every chapter: the solution runs top to bottom with all its tests (hidden ones included),
every test cell fails on its stub, and every mutant (a plausible wrong answer) is rejected."""

from __future__ import annotations

import time

import pytest

from autograder.chapters import nbgrader_meta
from notebooks import (CHAPTERS, errors_of, execute, exercises, load_mutants, run_exercise_variants,
                       solution_notebook, stub_of)

EXERCISES = [pytest.param(c, ex_id, src, id=ex_id) for c in CHAPTERS for ex_id, src in exercises(c)]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_solution_runs_and_passes_every_test(chapter, tmp_path):
    nb = solution_notebook(chapter)
    nb.cells = [c for c in nb.cells if c.metadata.get("buildgpt", {}).get("generated") != "setup"]
    start = time.perf_counter()
    execute(nb, tmp_path, allow_errors=True)
    seconds = time.perf_counter() - start
    failures = [(i, e) for i, c in enumerate(nb.cells) for e in errors_of(c)]
    assert not failures, f"{chapter.slug}: cells failed: {failures}"
    tests = [c for c in nb.cells if nbgrader_meta(c).get("grade")]
    assert tests and all(c.get("execution_count") for c in tests), "every test cell must have run"
    self_check = next(c for c in nb.cells if c.metadata.get("buildgpt", {}).get("generated") == "self-check")
    printed = "".join(o.get("text", "") for o in self_check.outputs)
    assert "FAIL" not in printed and "total" in printed, f"the self-check cell of the solution says:\n{printed}"
    print(f"{chapter.slug}: executed in {seconds:.0f} s")


@pytest.mark.parametrize("chapter,exercise,source", EXERCISES)
def test_tests_reject_the_stub_and_every_mutant(chapter, exercise, source, tmp_path):
    variants = {"the solution": source, "the stub": stub_of(source), **load_mutants(chapter).get(exercise, {})}
    errors = run_exercise_variants(chapter, exercise, variants, tmp_path)
    assert not errors["the solution"], f"{exercise}: the solution fails its tests here: {errors['the solution']}"
    survivors = [name for name, errs in errors.items() if name != "the solution" and not errs]
    assert not survivors, f"{exercise}: its test cell passed on: {survivors}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_every_exercise_has_two_mutants(chapter):
    mutants = load_mutants(chapter)
    for exercise, _ in exercises(chapter):
        assert len(mutants.get(exercise, {})) >= 2, f"{exercise} needs two or more mutants in tests/mutants/{chapter.slug}.py"
    unknown = set(mutants) - {e for e, _ in exercises(chapter)}
    assert not unknown, f"tests/mutants/{chapter.slug}.py names exercises the chapter does not have: {sorted(unknown)}"
