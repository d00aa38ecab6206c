"""`python -m autograder grade SUBMISSIONS_DIR`: grade a class with real nbgrader.

SUBMISSIONS_DIR holds one folder per student with that student's chapter notebooks
(`alice/00-pytorch.ipynb`). The command builds an nbgrader course from solutions/ in
`OUT/course`, copies the readable submissions into its `submitted/` folder, runs
`nbgrader autograde` and `nbgrader generate_feedback`, and writes:
- `OUT/grades.csv`: a row per student and chapter, points per exercise, total, max;
- `OUT/feedback/STUDENT/NN-slug.html`: what each student gets back (hidden tests by message only);
- `OUT/report.txt`: every submission that could not be graded, and why.
The gradebook in `OUT/course` keeps earlier grades: a re-run never loses them.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .chapters import Chapter, answer_cells, exercise_of, find_root, list_chapters, nbgrader_meta
from .course import build_course, generate_assignment, nbgrader
from .errors import UserError
from .selfcheck import read_notebook


@dataclass
class Submission:
    student: str  # the folder name, as the instructor sees it
    student_id: str  # the same, made safe for nbgrader
    chapter: str
    path: Path


@dataclass
class Problem:
    student: str
    file: str
    chapter: str
    reason: str


def student_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def collect(submissions: Path, chapters: list[Chapter]) -> tuple[list[Submission], list[Problem]]:
    if not submissions.is_dir():
        raise UserError(f"{submissions} is not a folder; give the folder that holds one sub-folder per student.")
    slugs = {c.slug for c in chapters}
    found, problems = [], []
    for entry in sorted(submissions.iterdir()):
        if entry.is_file() and entry.suffix == ".ipynb":
            problems.append(Problem("", entry.name, "", "it lies outside any student folder; "
                                    "put each student's notebooks in a folder named after the student"))
            continue
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        for nb_path in sorted(entry.glob("*.ipynb")):
            if nb_path.stem not in slugs:
                problems.append(Problem(entry.name, nb_path.name, "", "its name is not a chapter's; expected one of "
                                        + ", ".join(s + ".ipynb" for s in sorted(slugs))))
                continue
            try:
                read_notebook(nb_path)
            except UserError:
                problems.append(Problem(entry.name, nb_path.name, nb_path.stem,
                                        "it is not a notebook (not valid notebook JSON); ask for a fresh download"))
                continue
            found.append(Submission(entry.name, student_id(entry.name), nb_path.stem, nb_path))
    return found, problems


def grade(submissions: Path, out: Path, log=print) -> int:
    root = find_root()
    chapters = list_chapters(root)
    found, problems = collect(submissions, chapters)
    if not found and not problems:
        raise UserError(f"{submissions} holds no student folders with notebooks in them.")

    course = out / "course"
    sources = build_course(course, chapters)
    order = [nbgrader_meta(cell)["grade_id"] for ch in chapters for cell in answer_cells(sources[ch.slug])]
    for slug in sorted({s.chapter for s in found}):
        generate_assignment(course, slug)

    start = time.perf_counter()
    for sub in found:
        target = course / "submitted" / sub.student_id / sub.chapter / f"{sub.chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sub.path, target)
        t0 = time.perf_counter()
        try:
            nbgrader(course, "autograde", sub.chapter, "--student", sub.student_id, "--force")
            log(f"graded {sub.student}/{sub.chapter}.ipynb in {time.perf_counter() - t0:.1f} s")
        except UserError as exc:
            problems.append(Problem(sub.student, sub.path.name, sub.chapter, f"nbgrader could not grade it ({exc})"))
    for slug in sorted({s.chapter for s in found}):
        nbgrader(course, "generate_feedback", slug, "--force")
    graded_time = time.perf_counter() - start

    for sub in found:
        html = course / "feedback" / sub.student_id / sub.chapter / f"{sub.chapter}.html"
        if html.exists():
            dest = out / "feedback" / sub.student / f"{sub.chapter}.html"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, dest)

    names = {s.student_id: s.student for s in found}
    rows = gradebook_rows(course, chapters, names)
    write_grades(out / "grades.csv", rows, problems, order)
    write_report(out / "report.txt", problems)
    if found:
        log(f"graded {len(found)} notebook(s) in {graded_time:.1f} s "
            f"({graded_time / len(found):.1f} s per notebook, feedback included)")
    log(f"grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}")
    for p in problems:
        log(f"not graded: {p.student + '/' if p.student else ''}{p.file}: {p.reason}")
    return 1 if problems else 0


def gradebook_rows(course: Path, chapters: list[Chapter], names: dict[str, str]) -> list[dict]:
    """A row per graded student and chapter, read from nbgrader's gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            for chapter in chapters:
                try:
                    nb = gb.find_submission_notebook(chapter.slug, chapter.slug, student.id)
                except MissingEntry:
                    continue
                row = {"student": names.get(student.id, student.id), "chapter": chapter.slug, "status": "graded"}
                for g in sorted(nb.grades, key=lambda g: g.name):
                    row[exercise_of(g.name)] = g.score
                row["total"], row["max"] = nb.score, nb.max_score
                rows.append(row)
    return rows


def write_grades(path: Path, rows: list[dict], problems: list[Problem], order: list[str]) -> None:
    """grades.csv, written to a temporary file first so a crash never leaves half a file."""
    rows = rows + [{"student": p.student, "chapter": p.chapter, "status": f"not graded: {p.reason}"}
                   for p in problems if p.student]
    present = {k for r in rows for k in r if k.startswith("ex-")}
    exercises = [e for e in order if e in present] + sorted(present - set(order))  # in book order
    fields = ["student", "chapter", "status", *exercises, "total", "max"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r["student"], r["chapter"])):
            writer.writerow({k: _fmt(row.get(k, "")) for k in fields})
    tmp.replace(path)


def write_report(path: Path, problems: list[Problem]) -> None:
    lines = ["Submissions that could not be graded", ""]
    lines += [f"- {p.student + '/' if p.student else ''}{p.file}: {p.reason}" for p in problems] or ["(none)"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fmt(value):
    return f"{value:g}" if isinstance(value, float) else value
