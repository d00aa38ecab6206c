import json
from pathlib import Path
from autograder import sandbox
from autograder.sandbox import Job, Limits, run_many

def test_a_worker_that_dies_is_retried_then_reported_as_the_graders_failure(tmp_path, monkeypatch):
    calls = []
    def dies(job, limits, slot):
        calls.append(job.key)
        return {"stopped": "the notebook's worker failed (Killed)", "cells": []}
    monkeypatch.setattr(sandbox, "_run_worker", dies)
    job = Job("ada/00-pytorch.ipynb", tmp_path / "clean.ipynb", tmp_path / "result.json", [])
    records = run_many([job], Limits(), 1)
    assert calls == [job.key] * sandbox.WORKER_ATTEMPTS
    assert records[job.key]["grader_failed"]

def test_a_worker_killed_once_is_run_again(tmp_path, monkeypatch):
    answers = iter([{"stopped": "the notebook's worker failed (no output)", "cells": []},
                    {"cells": [], "notebook": {"cells": []}}])
    monkeypatch.setattr(sandbox, "_run_worker", lambda job, limits, slot: next(answers))
    job = Job("ada/00-pytorch.ipynb", tmp_path / "clean.ipynb", tmp_path / "result.json", [])
    assert run_many([job], Limits(), 1)[job.key] == {"cells": [], "notebook": {"cells": []}}


def test_grade_never_turns_the_graders_failure_into_a_zero(tmp_path, monkeypatch):
    import csv

    import nbformat

    from autograder.grade import grade
    from notebooks import CHAPTERS

    chapter = CHAPTERS[0]
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    nbformat.write(nbformat.read(chapter.student_notebook, as_version=4), tmp_path / "subs" / "ada" / f"{chapter.slug}.ipynb")
    monkeypatch.setattr(sandbox, "_run_worker", lambda job, limits, slot: {"stopped": "the notebook's worker failed (Killed)", "cells": []})
    out = tmp_path / "out"
    code = grade(tmp_path / "subs", out, jobs=1, log=lambda *a: None, progress=False)
    assert code == 1, "a notebook that was not graded makes the exit code non-zero"
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert len(rows) == 1 and rows[0]["status"].startswith("not graded: the grader's worker died"), rows
    assert rows[0]["total"] == "", "no score may be written for a notebook that was not run"
    run_dir = out / "course" / "sandbox" / "ada" / chapter.slug
    assert (run_dir / "pending-key").exists() and not (run_dir / "key").exists(), "a re-run must grade it again"
