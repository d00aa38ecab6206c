"""Grades never depend on how the class is split: one job, two jobs and two shards merged give
byte-identical grades.csv and report.txt; merge refuses shards that are not one class."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from autograder.shards import shard_of
from notebooks import CHAPTERS, ROOT, exercises

CHAPTER = CHAPTERS[0]
CLASS = {"perfect": "all", "half": "half", "张伟": "none"}  # shards 1/2: half; 2/2: perfect and 张伟


def autograder(*args):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    assert {shard_of(s, 2) for s in CLASS} == {1, 2}, "the class must fall in both shards"
    subs = tmp_path_factory.mktemp("subs")
    answers = dict(exercises(CHAPTER))
    ids = list(answers)
    for student, how in CLASS.items():
        solved = {"all": set(ids), "half": set(ids[: len(ids) // 2]), "none": set()}[how]
        nb = nbformat.read(CHAPTER.student_notebook, as_version=4)
        for cell in nb.cells:
            if nbgrader_meta(cell).get("grade_id") in solved:
                cell.source = strip_markers(answers[nbgrader_meta(cell)["grade_id"]], SOLUTION_MARKERS)
        (subs / student).mkdir()
        nbformat.write(nb, subs / student / f"{CHAPTER.slug}.ipynb")
    (subs / "loose.ipynb").write_text("{}")  # outside any student folder: reported once, by shard 1
    out = tmp_path_factory.mktemp("runs")
    results = {
        "one job": autograder("grade", str(subs), "--out", str(out / "one"), "--jobs", "1", "--no-progress"),
        "two jobs": autograder("grade", str(subs), "--out", str(out / "two"), "--jobs", "2", "--no-progress"),
        "shard 1/2": autograder("grade", str(subs), "--out", str(out / "s1"), "--shard", "1/2", "--jobs", "1", "--no-progress"),
        "shard 2/2": autograder("grade", str(subs), "--out", str(out / "s2"), "--shard", "2/2", "--jobs", "1", "--no-progress"),
    }
    results["merge"] = autograder("merge", str(out / "s2"), str(out / "s1"), "--out", str(out / "merged"))
    return out, results


def test_grades_do_not_depend_on_jobs_or_shards(runs):
    out, results = runs
    for name, result in results.items():
        assert "Traceback" not in result.stderr, f"{name}: {result.stderr[-2000:]}"
        assert result.returncode == (0 if name == "shard 2/2" else 1), f"{name}: {result.stdout}{result.stderr}"
    one = (out / "one" / "grades.csv").read_bytes()
    assert one.count(b"\n") == 1 + 3, one.decode()  # a header and three students
    assert "loose.ipynb: it lies outside any student folder" in (out / "one" / "report.txt").read_text(encoding="utf-8")
    for other in ("two", "merged"):
        assert (out / other / "grades.csv").read_bytes() == one, f"{other}: grades.csv differs from one job's"
        assert (out / other / "report.txt").read_bytes() == (out / "one" / "report.txt").read_bytes()
    assert (out / "merged" / "feedback" / "张伟" / f"{CHAPTER.slug}.html").is_file()
    shard1 = json.loads((out / "s1" / "shard.json").read_text(encoding="utf-8"))
    assert shard1["students"] == ["half"] and shard1["of"] == 2


def _copy(src, dst, edit=None):
    shutil.copytree(src, dst)
    if edit:
        record = json.loads((dst / "shard.json").read_text(encoding="utf-8"))
        edit(record)
        (dst / "shard.json").write_text(json.dumps(record), encoding="utf-8")
    return dst


def test_merge_refuses_what_is_not_one_class(runs, tmp_path):
    out, _ = runs
    s1, s2 = out / "s1", out / "s2"
    cases = {
        "missing": ([s1], "shard(s) 2/2 are missing"),
        "twice": ([s1, s1, s2], "was given twice"),
        "unfinished": ([s1, _copy(s2, tmp_path / "unfinished", None)], "holds no shard.json"),
        "release": ([s1, _copy(s2, tmp_path / "release", lambda r: r["release"].update({CHAPTER.slug: "0" * 64}))], "different releases"),
        "student twice": ([s1, _copy(s2, tmp_path / "dup", lambda r: r["students"].append("half"))], "appears in two shards"),
        "other split": ([s1, _copy(s2, tmp_path / "split", lambda r: r.update(of=3))], "different splits"),
    }
    (tmp_path / "unfinished" / "shard.json").unlink()
    for name, (dirs, says) in cases.items():
        result = autograder("merge", *map(str, dirs), "--out", str(tmp_path / f"merged-{name.replace(' ', '-')}"))
        assert result.returncode == 2 and says in result.stderr, f"{name}: {result.stderr}"
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
