"""The adversarial suite: damaged and malicious submissions, graded together in one batch by
`python -m autograder grade`, each with the exact score it must get.

Chapter 3 (attention) is the chapter: it runs in seconds. Its exercises and points:
simple-attention 2, softmax 2, causal-mask 1, sdpa 4 (uses softmax), mha 5 (uses sdpa and
causal-mask), compare-paths 2 (uses mha and causal-mask); 16 in all. Sabotage aims at
simple-attention (nothing depends on it) or comes after the mha test (only compare-paths is
left), so that every expected score below is exact.

Issue 21's cases ("grades an instructor can trust when the class is hostile") are graded in
batches of their own, each in the file named here (one batch per file keeps CI's time down):
- CJK and accented names (张伟, 王芳, José Müller), each graded under their own name:
  test_grading_hostile.py::test_exact_score; in grades.csv, feedback and `nbgrader export`:
  test_grading.py::test_nbgrader_export_shows_the_students_own_names;
- a classmate-killer and a grader-killer: test_grading_hostile.py::test_exact_score,
  ::test_the_batch_finishes_whatever_the_killers_do, ::test_the_grader_killer_killed_nothing;
  as an ordinary user: test_grading_users.py::test_an_ordinary_user_grades_a_class; kernels of a
  root grader, each a user of its own, cannot signal, read or write each other or the grader:
  test_grading_users.py::test_kernels_of_a_root_grader_are_users_of_their_own_and_cannot_reach_each_other;
- the test's helper swapped at call time: test_grading_hostile.py::
  test_helper_swapped_at_call_time_does_not_earn_the_mha_points (and test_sandbox_isolation.py);
- the guard replaced, an input transformer that drops asserts: test_grading_hostile.py::
  test_exact_score (guard-replaced, input-transformer) and test_sandbox_isolation.py;
- the solutions read from the grading folder at grading time: test_grading_hostile.py::
  test_the_solutions_cannot_be_read_at_grading_time;
- the answers imported from the chapter's own buildgpt module: test_grading_hostile.py::
  test_importing_the_chapters_own_module_is_flagged_with_the_evidence;
- a kernel that lists /proc and reads other processes' command lines while its classmates are
  graded sees none of their folder names, nor the grader's command line:
  test_adversarial_grading.py::test_a_kernel_cannot_see_its_classmates_processes;
- an instructor's private test: test_grading_private.py::test_private_tests_change_the_grade,
  ::test_private_tests_never_appear_in_feedback;
- a worker that dies, a kernel that cannot start: never a student's 0, always a non-zero exit:
  test_grading_workers.py, test_grading_users.py::
  test_a_kernel_that_cannot_start_is_the_graders_failure_in_one_sentence.
"""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
import textwrap

import nbformat
import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from autograder.sandbox import landlock_abi
from notebooks import CHAPTERS, ROOT, exercises

CHAPTER = next(c for c in CHAPTERS if c.slug == "03-attention")
SLUG = CHAPTER.slug
POINTS = {"ex-03-simple-attention": 2, "ex-03-softmax": 2, "ex-03-causal-mask": 1, "ex-03-sdpa": 4,
          "ex-03-mha": 5, "ex-03-compare-paths": 2}
FULL = sum(POINTS.values())
LIMITS = ["--timeout", "20", "--budget", "240", "--memory", "4096", "--max-procs", "16"]


def release():
    return nbformat.read(CHAPTER.student_notebook, as_version=4)


def solved(nb, only=None, skip=()):
    """Answer every exercise (or those in `only`) with the reference solution."""
    answers = {gid: strip_markers(src, SOLUTION_MARKERS) for gid, src in exercises(CHAPTER)}
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in answers and (only is None or gid in only) and gid not in skip:
            cell.source = answers[gid]
    return nb


def index_of(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == grade_id)


def set_answer(nb, exercise, source):
    nb.cells[index_of(nb, exercise)].source = textwrap.dedent(source)
    return nb


def after_mha_test(nb, source):
    """An extra cell of the student's right after the mha test: only compare-paths comes later."""
    nb.cells.insert(index_of(nb, "test-03-mha") + 1, nbformat.v4.new_code_cell(textwrap.dedent(source)))
    return nb


def first(nb, source):
    """An extra cell of the student's before the first exercise."""
    nb.cells.insert(index_of(nb, "ex-03-simple-attention"), nbformat.v4.new_code_cell(textwrap.dedent(source)))
    return nb


def without(points, *exercises):
    return points - sum(POINTS[e] for e in exercises)


WRONG_SIMPLE = """
import torch


def simple_self_attention(x):
    T = x.shape[-2]
    return torch.zeros_like(x), torch.zeros(*x.shape[:-1], T)
"""


def cases(out_dir):
    """student -> (file name, notebook or raw bytes, expected total or None for 'not graded', status part)."""
    c = {}
    c["perfect"] = (f"{SLUG}.ipynb", solved(release()), FULL, "graded")
    c["untouched"] = (f"{SLUG}.ipynb", release(), 0, "graded")
    c["half"] = (f"{SLUG}.ipynb", solved(release(), only={"ex-03-simple-attention", "ex-03-softmax", "ex-03-causal-mask"}),
                 5, "graded")

    # Damaged by editors and browsers
    nb = solved(release())
    for cell in nb.cells:
        cell.metadata = {}
    nb.metadata = {}
    c["colab-metadata-stripped"] = (f"Copy of {SLUG}.ipynb", nb, FULL, "repaired")
    c["renamed-by-browser"] = (f"{SLUG} (1).ipynb", solved(release()), FULL, "repaired")
    nb = solved(release())
    c["name-says-nothing"] = ("homework-final.ipynb", nb, FULL, "repaired")
    nb = solved(release())
    for cell in nb.cells:
        cell.metadata = {}
    nb.metadata = {}
    c["no-name-no-metadata"] = ("homework.ipynb", nb, None, "neither its name nor its metadata")
    c["not-json"] = (f"{SLUG}.ipynb", b"{ this is not json", None, "not a notebook")
    c["empty-notebook"] = (f"{SLUG}.ipynb", nbformat.v4.new_notebook(), None, "none of the cells")

    nb = solved(release())
    i = index_of(nb, "ex-03-simple-attention")
    old = copy.deepcopy(nb.cells[i])
    old.execution_count = 3
    nb.cells[i].source, nb.cells[i].execution_count = textwrap.dedent(WRONG_SIMPLE), 9  # run last: it counts
    nb.cells.insert(i, old)
    c["duplicated-answer-last-run-wrong"] = (f"{SLUG}.ipynb", nb, without(FULL, "ex-03-simple-attention"), "repaired")

    nb = solved(release())
    t = index_of(nb, "test-03-sdpa")
    for _ in range(2):
        nb.cells.insert(t, copy.deepcopy(nb.cells[t]))
    c["duplicated-test-cells"] = (f"{SLUG}.ipynb", nb, FULL, "repaired")

    nb = solved(release())
    for test in ("test-03-softmax", "test-03-mha"):
        del nb.cells[index_of(nb, test)]
    c["deleted-test-cells"] = (f"{SLUG}.ipynb", nb, FULL, "repaired")

    nb = set_answer(solved(release()), "ex-03-simple-attention", WRONG_SIMPLE)
    nb.cells[index_of(nb, "test-03-simple-attention")].source = "print('all tests passed')"
    c["edited-test-cell"] = (f"{SLUG}.ipynb", nb, without(FULL, "ex-03-simple-attention"), "repaired")

    nb = solved(release())
    moved = nb.cells.pop(index_of(nb, "ex-03-causal-mask"))
    nb.cells.append(moved)  # the answer now sits after its test and after everything that uses it
    c["moved-answer-cell"] = (f"{SLUG}.ipynb", nb, FULL, "repaired")

    nb = set_answer(solved(release()), "ex-03-simple-attention", """
        def simple_self_attention(x):
            return my_helper(x)
        """)
    nb.cells.insert(index_of(nb, "ex-03-simple-attention"), nbformat.v4.new_code_cell(textwrap.dedent("""
        import torch

        def my_helper(x):
            weights = torch.softmax(x @ x.transpose(-2, -1), dim=-1)
            return weights @ x, weights
        """)))
    c["extra-student-cells"] = (f"{SLUG}.ipynb", nb, FULL, "graded")  # the student's own cells are no repair

    # Code that misbehaves
    c["sys-exit"] = (f"{SLUG}.ipynb", set_answer(solved(release()), "ex-03-simple-attention", """
        import sys
        sys.exit("bye")
        """), without(FULL, "ex-03-simple-attention"), "graded")
    c["os-exit"] = (f"{SLUG}.ipynb", after_mha_test(solved(release()), "import os\nos._exit(0)"),
                    without(FULL, "ex-03-compare-paths"), "stopped")
    c["kernel-killed"] = (f"{SLUG}.ipynb", after_mha_test(solved(release()), "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
                          without(FULL, "ex-03-compare-paths"), "stopped")
    c["infinite-loop"] = (f"{SLUG}.ipynb", set_answer(solved(release()), "ex-03-simple-attention", """
        while True:
            pass
        """), without(FULL, "ex-03-simple-attention"), "graded")
    c["loop-ignoring-interrupts"] = (f"{SLUG}.ipynb", after_mha_test(solved(release()), """
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass
        """), without(FULL, "ex-03-compare-paths"), "stopped")
    c["memory-bomb"] = (f"{SLUG}.ipynb", set_answer(solved(release()), "ex-03-simple-attention", """
        hoard = []
        while True:
            hoard.append(bytearray(256 * 1024 * 1024))
        """), without(FULL, "ex-03-simple-attention"), "graded")
    c["fork-bomb"] = (f"{SLUG}.ipynb", after_mha_test(solved(release()), """
        import os, time
        while True:
            if os.fork() == 0:
                time.sleep(120)
                os._exit(0)
        """), without(FULL, "ex-03-compare-paths"), "stopped")

    # Cheating
    c["monkeypatch-torch-and-builtins"] = (f"{SLUG}.ipynb", first(set_answer(solved(release()), "ex-03-simple-attention", WRONG_SIMPLE), """
        import builtins, torch, torch.testing
        torch.allclose = lambda *args, **kwargs: True
        torch.equal = lambda *args, **kwargs: True
        torch.Tensor.allclose = lambda *args, **kwargs: True
        torch.testing.assert_close = lambda *args, **kwargs: None
        builtins.all = lambda *args: True
        builtins.AssertionError = type("Quiet", (Exception,), {})
        """), without(FULL, "ex-03-simple-attention"), "flagged")
    c["always-equal-tensor"] = (f"{SLUG}.ipynb", set_answer(solved(release()), "ex-03-simple-attention", """
        import torch


        class Yes(torch.Tensor):
            \"\"\"A tensor that equals everything and is close to everything.\"\"\"

            def __eq__(self, other):
                return True

            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):
                    return True
                with torch._C.DisableTorchFunctionSubclass():
                    result = func(*args, **(kwargs or {}))
                return result.as_subclass(cls) if isinstance(result, torch.Tensor) else result


        def simple_self_attention(x):
            T = x.shape[-2]
            return torch.zeros_like(x).as_subclass(Yes), torch.zeros(*x.shape[:-1], T).as_subclass(Yes)
        """), without(FULL, "ex-03-simple-attention"), "graded")
    c["fake-passed-prints"] = (f"{SLUG}.ipynb", first(release(), """
        for name in ["simple-attention", "softmax", "causal-mask", "sdpa", "mha", "compare-paths"]:
            print(f"test-03-{name}: passed")
        print("16 / 16")
        """), 0, "graded")
    c["swallowed-exceptions"] = (f"{SLUG}.ipynb", first(release(), """
        import sys
        get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
        sys.excepthook = lambda *args: None
        """), 0, "graded")
    if not landlock_abi():  # without Landlock the files are not fenced: the report says so (instructor guide)
        return c
    grades = out_dir / "grades.csv"
    c["writes-grading-files"] = (f"{SLUG}.ipynb", first(solved(release()), f"""
        import pathlib
        for target in [{str(grades)!r}, {str(out_dir / 'course' / 'gradebook.db')!r}, {str(out_dir.parent / 'subs' / 'perfect' / (SLUG + '.ipynb'))!r}]:
            try:
                pathlib.Path(target).write_text("student,chapter,total\\nwrites-grading-files,{SLUG},1000\\n")
                print("WROTE", target)
            except OSError as error:
                print("refused:", error)
        """), FULL, "graded")
    return c


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("adversarial")
    subs, out = base / "subs", base / "out"
    expected = cases(out)
    for student, (name, content, _, _) in expected.items():
        (subs / student).mkdir(parents=True)
        if isinstance(content, bytes):
            (subs / student / name).write_bytes(content)
        else:
            nbformat.write(content, subs / student / name)
    command = [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--no-progress", *LIMITS]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    return {"subs": subs, "out": out, "result": result, "rows": rows, "expected": expected, "command": command}


def test_the_batch_never_crashes(batch):
    result = batch["result"]
    assert "Traceback" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 1, "unrepairable submissions make the exit code 1"
    assert len(batch["expected"]) >= 15 + 3 + bool(landlock_abi()), "at least 15 kinds of damaged or malicious submissions, besides honest ones"


@pytest.mark.parametrize("student", [
    "perfect", "untouched", "half", "colab-metadata-stripped", "renamed-by-browser", "name-says-nothing",
    "no-name-no-metadata", "not-json", "empty-notebook", "duplicated-answer-last-run-wrong", "duplicated-test-cells",
    "deleted-test-cells", "edited-test-cell", "moved-answer-cell", "extra-student-cells", "sys-exit", "os-exit",
    "kernel-killed", "infinite-loop", "loop-ignoring-interrupts", "memory-bomb", "fork-bomb",
    "monkeypatch-torch-and-builtins", "always-equal-tensor", "fake-passed-prints", "swallowed-exceptions",
    "writes-grading-files"])
def test_each_submission_gets_its_exact_score(batch, student):
    if student not in batch["expected"]:
        pytest.skip("this Linux has no Landlock")
    _, _, total, status = batch["expected"][student]
    row = batch["rows"].get(student)
    assert row is not None, f"{student} is missing from grades.csv: never a silent loss"
    if total is None:
        assert row["status"].startswith("not graded") and status in row["status"], row
        assert student in (batch["out"] / "report.txt").read_text()
        return
    assert row["status"].startswith("graded") and status in row["status"], f"{student}: {row['status']}"
    assert float(row["max"]) == FULL
    assert float(row["total"]) == total, f"{student}: expected {total}, got {row['total']} ({row})"


def test_honest_students_are_untouched_by_the_others(batch):
    """The honest students' rows are exactly what they would get alone (perfect, nothing, half)."""
    rows = batch["rows"]
    assert rows["perfect"]["status"] == "graded" and float(rows["perfect"]["total"]) == FULL
    for exercise, points in POINTS.items():
        assert float(rows["perfect"][exercise]) == points
        assert float(rows["untouched"][exercise]) == 0
        want = points if exercise in ("ex-03-simple-attention", "ex-03-softmax", "ex-03-causal-mask") else 0
        assert float(rows["half"][exercise]) == want, exercise
    original = nbformat.read(batch["subs"] / "perfect" / f"{SLUG}.ipynb", as_version=4)
    assert original.cells, "a student's code cannot overwrite another student's submission"


@pytest.mark.skipif(not landlock_abi(), reason="this Linux has no Landlock: student code is not fenced off from files")
def test_student_code_cannot_touch_the_grading_files(batch):
    graded = nbformat.read(batch["out"] / "course" / "autograded" / "writes-grading-files" / SLUG / f"{SLUG}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert "WROTE" not in printed, f"the sandbox let student code write outside its throwaway folder: {printed[:500]}"
    assert printed.count("refused:") == 3, printed[:1000]
    assert "writes-grading-files,03-attention,1000" not in (batch["out"] / "grades.csv").read_text()


def test_report_says_what_was_repaired_and_stopped(batch):
    report = (batch["out"] / "report.txt").read_text()
    for words in ("metadata was missing", "appears 3 times", "was deleted; put back", "was edited",
                  "was read as chapter", "cells were moved", "extra code cell", "processes", "ignored the interrupt",
                  "the kernel died", "torch.allclose", "builtins.all"):
        assert words in report, f"report.txt does not mention {words!r}"
    assert (batch["out"] / "preflight" / "colab-metadata-stripped.txt").exists()


def test_feedback_for_every_graded_student(batch):
    for student, (_, _, total, _) in batch["expected"].items():
        if total is not None:
            assert (batch["out"] / "feedback" / student / f"{SLUG}.html").exists(), student


def test_rerun_grades_only_what_changed(batch):
    subs, out = batch["subs"], batch["out"]
    before = (out / "grades.csv").read_text()
    nb = solved(release())
    (subs / "late-student").mkdir()
    nbformat.write(nb, subs / "late-student" / f"{SLUG}.ipynb")
    result = subprocess.run(batch["command"], cwd=ROOT, capture_output=True, text=True)
    assert "(1 run now," in result.stdout, result.stdout[-2000:]
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert float(rows["late-student"]["total"]) == FULL
    old = {r["student"]: r for r in csv.DictReader(before.splitlines())}
    for student, row in old.items():
        assert rows[student] == row, f"{student}'s row changed on a re-run"


def test_course_holds_the_repaired_copies_for_plain_nbgrader(batch):
    """Instructors can run nbgrader themselves in the course: submitted/ holds the repaired copies, metadata and all."""
    sub = batch["out"] / "course" / "submitted" / "colab-metadata-stripped" / SLUG / f"{SLUG}.ipynb"
    nb = nbformat.read(sub, as_version=4)
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c).get("grade_id")]
    assert sorted(ids) == sorted(list(POINTS) + ["test-" + e[3:] for e in POINTS]), ids
    assert json.loads((batch["out"] / "course" / "sandbox" / "colab-metadata-stripped" / SLUG / "status.json").read_text())


def test_the_index_of_issue_21_names_tests_that_exist():
    """The module's docstring points to each case's test in another file: those tests must exist."""
    import re

    files = set(re.findall(r"(test_\w+\.py)", __doc__))
    named = set(re.findall(r"::\s*(test_\w+)", __doc__))
    defined = {m for f in files for m in re.findall(r"(?m)^def (test_\w+)", (ROOT / "tests" / f).read_text())}
    assert files and named and named <= defined, sorted(named - defined)


SNOOPER = """
import os, time
markers = {markers!r}
mine = os.getpid()
seen, found = set(), set()
end = time.monotonic() + {seconds}
while time.monotonic() < end:  # over and over, while the classmates are graded
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == mine:
            continue
        seen.add(pid)
        texts = []
        try:
            texts.append(open(f"/proc/{{pid}}/cmdline", "rb").read().decode(errors="replace"))
        except OSError:
            pass
        for link in ("cwd", "exe"):
            try:
                texts.append(os.readlink(f"/proc/{{pid}}/{{link}}"))
            except OSError:
                pass
        found |= {{m for m in markers for t in texts if m in t}}
    time.sleep(0.2)
print("SNOOPED", len(seen), "other processes")
for m in sorted(found):
    print("FOUND", m)
"""

HELPER = """
import subprocess, sys
# a helper process whose command line names its owner, as `!python train.py --out runs/<me>` would
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(90)", {name!r}])
"""


def test_a_kernel_cannot_see_its_classmates_processes(tmp_path):
    """Issue 21: a student's code lists /proc and reads every process's command line (and where
    it may, its folder and program) while two classmates are graded beside it (--jobs 2), each
    running a helper process named after its own folder. It finds none of their names, nor the
    grader's command line (which names the submissions folder); everyone gets full marks."""
    subs, out = tmp_path / "subs-5c1f", tmp_path / "out"
    classmates = ["zoe-okafor-41", "yusuf-lindqvist-77"]
    markers = [*classmates, str(subs)]
    snooper = first(solved(release()), SNOOPER.format(markers=markers, seconds=25))
    snooper = first(snooper, SNOOPER.format(markers=markers, seconds=25))  # two cells: 50 s in all
    for name, nb in [("a-snooper", snooper)] + [(c, first(solved(release()), HELPER.format(name=c))) for c in classmates]:
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / f"{SLUG}.ipynb")
    limits = ["--timeout", "120", "--budget", "600", "--memory", "4096", "--max-procs", "16"]
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--no-progress",
                             "--jobs", "2", *limits], cwd=ROOT, capture_output=True, text=True)
    said = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in said, said[-3000:]
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    for name in ["a-snooper", *classmates]:
        assert rows[name]["status"] == "graded" and float(rows[name]["total"]) == FULL, rows[name]
    graded = nbformat.read(out / "course" / "autograded" / "a-snooper" / SLUG / f"{SLUG}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert printed.count("SNOOPED") == 2, printed[:2000]
    assert "FOUND" not in printed, f"a kernel saw its classmates' or the grader's processes: {printed[:2000]}"
