"""Grading rate: `python -m autograder grade` on N synthetic students of one chapter.

    python benchmarks/grading.py [--students 100] [--chapter 03-attention] [--jobs N] [--out DIR]

The students are made from the chapter's release and its reference solutions: each answers a
random subset of the exercises (seeded), a tenth of them through Colab (all metadata stripped,
`Copy of NN-slug.ipynb`), a tenth with a duplicated answer cell. It then runs the real command
once (preflight, sandboxed kernels, nbgrader's gradebook and feedback), checks that every
student got exactly the points of the exercises it answered, and prints the wall time, notebooks
per minute, the seconds per notebook and the machine's load average before and after.

It also prints where a notebook's time goes, from timers put around the grader's steps in this
process and from each sandbox's record: the release (nbgrader generate_assignment), preflight,
the sandbox worker (the slot's pool process, amortised over its notebooks, the fork, clean-up),
the kernel's start, the notebook's own cells (nbclient's execute_input .. execute_reply of every
cell), nbgrader's start-up, scoring (Autograde) and feedback (GenerateFeedback), the gradebook, the
report, and the rest. With --jobs 1 the seconds add up to the wall time; with more jobs the
sandbox and nbgrader rows are summed over the processes that ran at once (core-time, not wall).
The grader's overhead is everything beyond running the notebook's cells once, in core-seconds:
(wall time x jobs - the cells' time) / notebooks.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import nbformat  # noqa: E402

from autograder.chapters import (SOLUTION_MARKERS, answer_cells, course_config, list_chapters,  # noqa: E402
                                 nbgrader_meta, source_notebook, strip_markers)
from autograder.grade import grade  # noqa: E402
from autograder.sandbox import Limits  # noqa: E402
from autograder.selfcheck import chapter_tests  # noqa: E402


def make_students(chapter, n: int, folder: Path, seed: int = 0) -> dict[str, float]:
    """Write n submissions; return student -> the total each must get."""
    rng = random.Random(seed)
    source = source_notebook(chapter, course_config(ROOT))
    answers = {nbgrader_meta(c)["grade_id"]: strip_markers(c.source, SOLUTION_MARKERS) for c in answer_cells(source)}
    tests = {k: t for k, t in chapter_tests(chapter.slug).items() if not k.startswith("__")}
    points = {t["exercise"]: 0.0 for t in tests.values()}
    for t in tests.values():
        points[t["exercise"]] += t["points"]
    release = nbformat.read(chapter.student_notebook, as_version=4)
    # An exercise's points need the exercises its solution uses: answer a prefix of the book's order.
    order = list(answers)
    expected = {}
    for k in range(n):
        student = f"student-{k:03d}"
        solved = set(order[: rng.randint(0, len(order))])
        nb = copy.deepcopy(release)
        for cell in nb.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in solved:
                cell.source = answers[gid]
        name = f"{chapter.slug}.ipynb"
        if k % 10 == 3:  # through Colab
            for cell in nb.cells:
                cell.metadata = {}
            nb.metadata = {}
            name = f"Copy of {chapter.slug}.ipynb"
        elif k % 10 == 7 and solved:  # a duplicated answer cell, the copy run last
            i = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") in solved)
            dup = copy.deepcopy(nb.cells[i])
            dup.execution_count = 99
            nb.cells.insert(i + 1, dup)
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / name)
        expected[student] = sum(points[e] for e in solved)
    return expected


class Timers:
    """Seconds spent in named functions, by wrapping them for the length of a `with`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def around(self, targets: dict[str, tuple[object, str]]):
        saved = []
        for name, (owner, attr) in targets.items():
            original = getattr(owner, attr)
            saved.append((owner, attr, original))

            def timed(*args, _original=original, _name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_name] = self.seconds.get(_name, 0.0) + time.perf_counter() - start
            setattr(owner, attr, timed)
        try:
            yield self
        finally:
            for owner, attr, original in saved:
                setattr(owner, attr, original)


def cell_seconds(nb: dict) -> float:
    """Seconds the kernel spent on the cells themselves, from nbclient's timing metadata."""
    total = 0.0
    for cell in nb.get("cells", []):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            begin, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - begin).total_seconds()
    return total


def cpu_seconds() -> float:
    """CPU seconds (user + system) the whole machine has spent since it started, from /proc/stat.

    Counting only this process and its children (getrusage) misses the kernels: they run in PID
    namespaces of their own and are reaped there, so their time never reaches this process, and the
    count came out lower than the kernels' own. The machine's count includes them, and also anything
    else the machine ran at the time: on an idle machine that is the grader's work."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def time_table(timers: Timers, records: list[dict], wall: float, jobs: int) -> list[tuple[str, float | None]]:
    """(step, seconds) rows; the sandbox rows from the records, nbgrader's converters from what
    the scoring processes report, the others from the timers; None: not measurable in this run.
    With one job the rows add up to the wall time; with more, the sandbox and converter rows are
    core-time summed over the processes that ran at once."""
    t = timers.seconds
    kernel = sum(r.get("seconds") or 0.0 for r in records)
    cells = sum(cell_seconds(r.get("notebook") or {}) for r in records)
    scoring, feedback = t.get("scoring", t.get("scoring-here", 0.0)), t.get("feedback", t.get("feedback-here", 0.0))
    rows = [
        ("course folder (build_course)", t.get("release", 0.0)),
        ("release per chapter (release_of)", t.get("release_of", 0.0)),
        ("preflight", t.get("preflight", 0.0)),
        # The worker's own share is the sandbox's wall time less the kernels' only when one runs at a time.
        ("sandbox worker: pool, fork, clean-up", t.get("sandbox", 0.0) - kernel if jobs == 1 else None),
        ("kernel start, guard, between cells", kernel - cells),
        ("the notebook's own cells", cells),
        ("nbgrader start-up", t.get("nbgrader", 0.0) - scoring - feedback if jobs == 1 else None),
        ("nbgrader scoring (Autograde)", scoring),
        ("nbgrader feedback (GenerateFeedback)", feedback),
        ("gradebook: names, rows", t.get("names", 0.0) + t.get("gradebook", 0.0)),
        ("report", t.get("report", 0.0)),
    ]
    in_process = [s for name, s in rows if s is not None and not name.startswith(("sandbox", "kernel", "the notebook", "nbgrader"))]
    rows.append(("the rest (collect, copies, grades.csv)", wall - sum(in_process) - t.get("sandbox", 0.0) - t.get("nbgrader", 0.0)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--chapter", default="03-attention")
    parser.add_argument("--jobs", type=int, default=None, help="default: one per CPU core")
    parser.add_argument("--out", type=Path, default=None, help="keep the grading folder here (default: a temporary one)")
    args = parser.parse_args()
    chapter = next((c for c in list_chapters(ROOT) if c.slug == args.chapter), None)
    if chapter is None:
        print(f"error: unknown chapter {args.chapter!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="buildgpt-bench-") as tmp:
        subs = Path(tmp) / "submissions"
        out = args.out or Path(tmp) / "grading"
        expected = make_students(chapter, args.students, subs)
        load_before = os.getloadavg()
        import nbgrader.converters

        import autograder.grade as grading

        timers = Timers()
        nbgrader_pass = grading._nbgrader_pass

        def counted(*a, **kw):  # the converters run in processes of their own: they report their seconds
            result = nbgrader_pass(*a, **kw)
            for name, key in (("Autograde", "scoring"), ("GenerateFeedback", "feedback")) if "seconds" in result else ():
                timers.seconds[key] = timers.seconds.get(key, 0.0) + result.get("seconds", {}).get(name, 0.0)
            return result

        grading._nbgrader_pass = counted
        cpu_before = cpu_seconds()
        try:
            with timers.around({"release": (grading, "build_course"), "release_of": (grading, "release_of"),
                                "preflight": (grading, "preflight"), "gradebook": (grading, "gradebook_rows"),
                                "names": (grading, "_name_students"), "report": (grading, "write_report"),
                                "sandbox": (grading, "run_many"), "nbgrader": (grading, "_nbgrader_pass"),
                                # a grader that runs nbgrader's converters in this process (older versions)
                                "scoring-here": (nbgrader.converters.Autograde, "start"),
                                "feedback-here": (nbgrader.converters.GenerateFeedback, "start")}):
                start = time.perf_counter()
                grade(subs, out, jobs=args.jobs, limits=Limits(), log=lambda *a: None, progress=True)
                wall = time.perf_counter() - start
        finally:
            grading._nbgrader_pass = nbgrader_pass
        cpu = cpu_seconds() - cpu_before
        load_after = os.getloadavg()
        rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
        import json

        records = [json.loads(p.read_text()) for p in (out / "course").rglob("result.json")]
    wrong = [s for s, total in expected.items() if s not in rows or float(rows[s].get("total") or -1) != total]
    jobs = args.jobs or os.cpu_count()
    print(f"chapter {chapter.slug}: {args.students} students, {jobs} job(s), {os.cpu_count()} CPU core(s)")
    print(f"wall time {wall:.1f} s; {args.students / wall * 60:.1f} notebooks per minute; "
          f"{wall / args.students:.2f} s per notebook (wall) , {wall * jobs / args.students:.1f} core-seconds per notebook")
    print("load average before: " + ", ".join(f"{x:.2f}" for x in load_before)
          + "; after: " + ", ".join(f"{x:.2f}" for x in load_after))
    table = time_table(timers, records, wall, jobs)
    print(f"\nwhere the time goes ({len(records)} notebooks run; seconds summed over notebooks"
          + ("" if jobs == 1 else f"; the sandbox and nbgrader rows are core-time over {jobs} processes at once") + "):")
    print(f"  {'step':<44} {'seconds':>9} {'per notebook':>13}")
    for name, seconds in table:
        if seconds is None:
            print(f"  {name:<44} {'-':>9} {'-':>13}   (only with --jobs 1)")
        else:
            print(f"  {name:<44} {seconds:>9.1f} {seconds / args.students:>13.2f}")
    cells = dict(table)["the notebook's own cells"]
    if jobs == 1:
        total = sum(s for _, s in table if s is not None)
        print(f"  {'sum':<44} {total:>9.1f}   (wall {wall:.1f} s)")
    # Everything the machine's cores did that is not the student's cells, per notebook: with one job
    # the wall time less the cells; with more, the cores' time (wall x jobs) less the cells.
    print(f"grader's overhead beyond running the cells once: {(wall * jobs - cells) / args.students:.2f} core-seconds "
          f"per notebook ({wall * jobs / args.students:.2f} in all, {cells / args.students:.2f} of them the cells)")
    cells_cpu = sum(r.get("cells_cpu") or 0.0 for r in records)
    print(f"CPU time: {cpu / args.students:.2f} CPU-seconds per notebook in all (the whole machine's, from /proc/stat: "
          f"on a busy machine it includes the other work), {cells_cpu / args.students:.2f} of them the kernel running "
          f"the notebook's cells; the grader's overhead {(cpu - cells_cpu) / args.students:.2f} CPU-seconds per notebook")
    print(f"scores exact for {args.students - len(wrong)} of {args.students} students"
          + (f"; wrong: {', '.join(wrong[:5])}" if wrong else ""))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
