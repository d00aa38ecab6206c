"""`python -m autograder grade SUBMISSIONS_DIR`: grade a class, robustly, into a real nbgrader course.

SUBMISSIONS_DIR holds one folder per student with that student's chapter notebooks
(`alice/00-pytorch.ipynb`; `Copy of 00-pytorch (1).ipynb` will do). For each notebook:
1. preflight (autograder/preflight.py): read it leniently, map its name to a chapter, and build a
   clean copy from the release with the student's answers in it (metadata, duplicates, deleted or
   edited test cells repaired); a file that cannot be repaired is reported, never scored 0;
2. run the clean copy in a sandboxed kernel (autograder/sandbox.py): a throwaway folder, per-cell
   timeout, total time budget, memory and process caps, the guard against patched tests; `jobs`
   notebooks at a time; a notebook already run for the same bytes is not run again unless forced;
3. hand the clean copy to nbgrader (OUT/course/submitted/) and let nbgrader's own autograde
   pipeline score it from the recorded outputs (RecordedOutputs below replaces its Execute step),
   then nbgrader's generate_feedback (hidden tests by message only).
It writes OUT/grades.csv (status per row), OUT/feedback/STUDENT/NN-slug.html, OUT/report.txt and
OUT/preflight/STUDENT.txt. The gradebook in OUT/course keeps earlier grades.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
import unicodedata
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from .chapters import Chapter, answer_cells, exercise_of, find_root, list_chapters, nbgrader_meta
from .course import build_course, generate_assignment
from .errors import UserError
from .preflight import Preflight, preflight
from .private import add_private_tests, load_private_tests
from .sandbox import WORKER_ATTEMPTS, Job, Limits, run_many
from .shards import release_digest, shard_of, write_shard_record

ENGINE_VERSION = "2"  # part of every run's key: a new engine grades everything again
RUNS = "sandbox"  # OUT/course/sandbox/STUDENT/CHAPTER/: the clean copy run, its record, its status


@dataclass
class Problem:
    student: str
    file: str
    chapter: str
    reason: str


def student_id(name: str) -> str:
    """nbgrader's id (and folder name) for a student's folder name: the name itself when it is plain
    lower-case ASCII, else an ASCII rendering plus a hash of the exact name. Two names never share an
    id: 张伟 and 王芳, José and Jose, Ana and ana (one folder on a case-insensitive disk) all differ,
    and a plain name never contains "__", which every hashed id does."""
    if re.fullmatch(r"[a-z0-9](?:[a-z0-9-]|_(?!_))*", name) and not name.endswith("_"):
        return name
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:40] or "student"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}__{digest}"


def collect(submissions: Path) -> tuple[list[tuple[str, Path]], list[Problem]]:
    if not submissions.is_dir():
        raise UserError(f"{submissions} is not a folder; give the folder that holds one sub-folder per student.")
    found, problems = [], []
    for entry in sorted(submissions.iterdir()):
        if entry.is_file() and entry.suffix == ".ipynb":
            problems.append(Problem("", entry.name, "", "it lies outside any student folder; "
                                    "put each student's notebooks in a folder named after the student"))
            continue
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        try:  # glob would say nothing of a folder it may not list
            listed = sorted(p for p in entry.iterdir() if p.suffix == ".ipynb")
        except PermissionError:
            problems.append(Problem(entry.name, "", "", "this student's folder cannot be read by the user running "
                                    "the grader; let that user read it (chmod -R a+rX) and run `grade` again"))
            continue
        for nb_path in listed:
            if nb_path.is_file() and not nb_path.name.startswith("."):
                found.append((entry.name, nb_path))
    return found, problems


def pick_one(candidates: list[Preflight], paths: dict[int, Path]) -> tuple[Preflight, list[Preflight]]:
    """Of several files of one student for one chapter: the one named exactly, else the newest."""
    def rank(pre):
        return (pre.file == f"{pre.chapter}.ipynb", paths[id(pre)].stat().st_mtime, pre.file)
    ordered = sorted(candidates, key=rank, reverse=True)
    return ordered[0], ordered[1:]


def grade(submissions: Path, out: Path, jobs: int | None = None, force: bool = False,
          limits: Limits | None = None, log=print, progress: bool = True, private: Path | None = None,
          shard: tuple[int, int] | None = None) -> int:
    limits = limits or Limits()
    jobs = jobs or os.cpu_count() or 1
    # Absolute from here on: nbgrader's converters run in other processes and change their folder,
    # so `--out grading/` (relative, as the README writes it) would be looked for in the wrong place.
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    private = Path(private).resolve() if private is not None else None
    # nbgrader's gradebook runs `alembic` from PATH, in this process too: this Python's own, even
    # when its venv was not activated (`.venv/bin/python -m autograder grade ...`)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    wall = time.perf_counter()
    root = find_root()
    chapters = list_chapters(root)
    files, problems = collect(submissions)
    if not files and not problems:
        raise UserError(f"{submissions} holds no student folders with notebooks in them.")
    if shard is not None:  # this run grades the students whose names fall in shard K of N
        files = [(s, p) for s, p in files if shard_of(s, shard[1]) == shard[0]]
        problems = problems if shard[0] == 1 else []  # files outside any student folder: shard 1 says so

    course = out / "course"
    sources = build_course(course, chapters)
    slugs = [c.slug for c in chapters]
    order = [nbgrader_meta(cell)["grade_id"] for ch in chapters for cell in answer_cells(sources[ch.slug])]
    if private is not None:  # the instructor's own tests join the chapter's source (autograder/private.py)
        exercises = {s: [nbgrader_meta(c)["grade_id"] for c in answer_cells(sources[s])] for s in slugs}
        for slug, tests in load_private_tests(private, chapters, exercises).items():
            add_private_tests(sources[slug], tests)
            nbformat.write(sources[slug], course / "source" / slug / f"{slug}.ipynb")

    # 1. Preflight, against the release of each chapter handed in (made by nbgrader, once)
    from .preflight import chapter_from_name

    wanted = {path: chapter_from_name(path.name, slugs) or _chapter_in_metadata(path, slugs) for _, path in files}
    releases = {slug: release_of(course, slug) for slug in sorted({s for s in wanted.values() if s})}
    pres: list[Preflight] = []
    paths: dict[int, Path] = {}
    for student, path in files:
        pre = preflight(student, path, slugs, releases, sources)
        pres.append(pre)
        paths[id(pre)] = path
    grouped: dict[tuple[str, str], list[Preflight]] = {}
    for pre in pres:
        if pre.fatal:
            problems.append(Problem(pre.student, pre.file, pre.chapter, pre.fatal))
        else:
            grouped.setdefault((pre.student, pre.chapter), []).append(pre)
    chosen: list[Preflight] = []
    for (student, slug), group in grouped.items():
        best, others = pick_one(group, paths) if len(group) > 1 else (group[0], [])
        for other in others:
            best.notes.append(f"{other.file} is another copy of {slug}; {best.file} was graded instead")
        chosen.append(best)

    # 2. Run what is new or changed, in the sandbox
    todo: list[Job] = []
    for pre in chosen:
        sid = student_id(pre.student)
        run_dir = course / RUNS / sid / pre.chapter
        run_dir.mkdir(parents=True, exist_ok=True)
        key = _run_key(paths[id(pre)], sources[pre.chapter], limits)
        fresh = (run_dir / "key").exists() and (run_dir / "key").read_text() == key and (run_dir / "result.json").exists()
        target = course / "submitted" / sid / pre.chapter / f"{pre.chapter}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(pre.submission, target)
        original = out / "originals" / pre.student / pre.file
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[id(pre)], original)
        if fresh and not force:
            continue
        (run_dir / "key").unlink(missing_ok=True)
        nbformat.write(pre.executable, run_dir / "clean.ipynb")
        todo.append(Job(f"{pre.student}/{pre.file}", run_dir / "clean.ipynb", run_dir / "result.json", pre.test_ids))
        (run_dir / "pending-key").write_text(key)
    bar = _progress(len(todo), progress)
    records: dict[str, dict] = {}

    def finished(job: Job) -> None:
        """Each notebook's result is final as soon as it is run: a grader that dies later (a crash,
        a SIGKILL) loses nothing, and a re-run goes on with the notebooks that were not run yet."""
        record = records.get(job.key) or {}
        if record.get("grader_failed"):  # not the student's 0: leave it pending, a re-run tries again
            job.result.unlink(missing_ok=True)
        else:
            if "notebook" not in record:  # the worker ran out of time: keep a record that says so
                record = {"stopped": record.get("stopped", "the notebook could not be run"), "cells": [], "notebook": None}
                job.result.write_text(json.dumps(record))
            (job.result.parent / "pending-key").replace(job.result.parent / "key")
        bar.update(1)

    if todo:
        run_many(todo, limits, jobs, progress=finished, results=records)
    bar.close()

    failed_runs = {job.key for job in todo if (records.get(job.key) or {}).get("grader_failed")}
    for pre in [p for p in chosen if f"{p.student}/{p.file}" in failed_runs]:
        chosen.remove(pre)
        record = records[f"{pre.student}/{pre.file}"]
        why = record.get("stopped", "no record")
        problems.append(Problem(pre.student, pre.file, pre.chapter, (
            f"its kernel could not start, {WORKER_ATTEMPTS} times ({why}); nothing was scored: the grader's set-up "
            "is at fault, not the notebook (too little --memory? a Python the kernel's user cannot run?); fix it and "
            "run `grade` again" if record.get("kernel_failed") else
            f"the grader's worker died {WORKER_ATTEMPTS} times without a result ({why}); "
            "nothing was scored: run `grade` again, and look at this notebook if it keeps happening")))

    # 3. nbgrader scores the clean copies from the recorded outputs, then writes feedback
    statuses = {}
    for pre in chosen:
        sid = student_id(pre.student)
        run_dir = course / RUNS / sid / pre.chapter
        record = json.loads((run_dir / "result.json").read_text())
        status = _status(pre, record)
        (run_dir / "status.json").write_text(json.dumps({"student": pre.student, "status": status,
                                                         "report": _report_lines(pre, record)}))
        statuses[(sid, pre.chapter)] = status
    graded = _nbgrader_pass(course, [(student_id(p.student), p.chapter) for p in chosen], log, jobs)
    _name_students(course, {student_id(p.student): p.student for p in chosen})
    for pre in chosen:
        html = course / "feedback" / student_id(pre.student) / pre.chapter / f"{pre.chapter}.html"
        if html.exists():
            dest = out / "feedback" / pre.student / f"{pre.chapter}.html"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, dest)
    for sid, slug, reason in graded["failed"]:
        problems.append(Problem(_name_of(course, sid), f"{slug}.ipynb", slug, f"nbgrader could not grade it ({reason})"))

    rows = gradebook_rows(course, chapters)
    write_grades(out / "grades.csv", rows, problems, order)
    write_report(out, course, chosen, problems)
    if shard is not None:  # written last: a shard without it did not finish
        write_shard_record(out, shard, release_digest(sources), sorted({student for student, _ in files}), order)
    wall = time.perf_counter() - wall
    unscored = {(sid, slug) for sid, slug, _ in graded["failed"]}  # not graded: counted with the problems
    chosen = [p for p in chosen if (student_id(p.student), p.chapter) not in unscored]
    ran = sum(1 for job in todo if job.key not in failed_runs)
    unchanged = len(chosen) - sum(1 for p in chosen if f"{p.student}/{p.file}" in {job.key for job in todo})
    stopped = sum(1 for pre in chosen if "stopped" in statuses.get((student_id(pre.student), pre.chapter), ""))
    repaired = sum(1 for pre in chosen if pre.notes)
    flagged = {pre.student for pre in chosen if "flagged" in statuses.get((student_id(pre.student), pre.chapter), "")}
    handed_in = len(chosen) + sum(1 for p in problems if p.file)
    rate = f" ({100 * len(chosen) / handed_in:.0f}% of {handed_in} handed in)" if handed_in else ""
    log(f"{len(chosen)} notebook(s) graded{rate} ({ran} run now, {unchanged} unchanged since the last run), "
        f"{repaired} repaired, {stopped} stopped by a limit, {len(flagged)} student(s) flagged, {len(problems)} not graded; "
        f"{wall:.1f} s in all" + (f", {ran / wall * 60:.1f} notebooks per minute" if ran else ""))
    log(f"grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}; report: {out / 'report.txt'}")
    for p in problems:
        log(f"not graded: {p.student + '/' if p.student else ''}{p.file}: {p.reason}")
    return 1 if problems else 0


def _chapter_in_metadata(path: Path, slugs: list[str]) -> str:
    from .preflight import read_cells

    try:
        nb = read_cells(path.read_bytes())
    except OSError:
        return ""
    meta = nb.metadata.get("buildgpt") if nb is not None else None
    return meta.get("chapter") if isinstance(meta, dict) and meta.get("chapter") in slugs else ""


def release_of(course: Path, slug: str):
    """The chapter's release (nbgrader generate_assignment), made again only when its source changed."""
    src = course / "source" / slug / f"{slug}.ipynb"
    rel = course / "release" / slug / f"{slug}.ipynb"
    stamp = course / "release" / f".{slug}.source-sha256"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and rel.exists() and (course / "gradebook.db").exists():
        return nbformat.read(rel, as_version=4)
    nb = generate_assignment(course, slug)
    stamp.write_text(digest)
    return nb


def _run_key(path: Path, source, limits: Limits) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(source.metadata.get("buildgpt", {}), sort_keys=True).encode())
    h.update(json.dumps(asdict(limits), sort_keys=True).encode())
    h.update(ENGINE_VERSION.encode())
    return h.hexdigest()


def _status(pre: Preflight, record: dict) -> str:
    parts = []
    if pre.notes:
        parts.append("repaired (see report.txt)")
    if record.get("stopped"):
        parts.append(f"stopped: {record['stopped']}")
    tampered = record.get("tampered") or []
    if tampered:
        parts.append("flagged: the notebook changed what tests use (" + ", ".join(tampered[:4])
                     + (", ..." if len(tampered) > 4 else "") + "); restored before each test")
    for flag in getattr(pre, "flags", []):  # what cannot be undone, with its evidence (preflight)
        parts.append(f"flagged: {flag}")
    timeouts = _timed_out_cells(record)
    if timeouts and not record.get("stopped"):
        parts.append(f"{len(timeouts)} cell(s) interrupted at the time limit")
    return "graded" + (", " + "; ".join(parts) if parts else "")


def _timed_out_cells(record: dict) -> list[int]:
    """Numbers (from 1) of the code cells that ran past their time limit."""
    cells = [c for c in (record.get("notebook") or {}).get("cells", []) if c.get("cell_type") == "code"]
    return [n for n, c in enumerate(cells, 1) if any(o.get("ename") == "TimeoutError" for o in c.get("outputs", []))]


def _report_lines(pre: Preflight, record: dict) -> list[str]:
    lines = pre.notes + pre.info
    if record.get("stopped"):
        lines.append(f"stopped early: {record['stopped']}; the tests after that point count as failed")
    for t in record.get("tampered") or []:
        lines.append(f"changed {t}; put back before each test cell")
    lines += [f"FLAGGED: {flag}" for flag in getattr(pre, "flags", [])]
    timeouts = _timed_out_cells(record)
    if timeouts:
        lines.append(f"code cell(s) {', '.join(map(str, timeouts))} ran past the time limit and were interrupted; "
                     "what they should have defined is missing")
    lines += record.get("notes") or []
    return lines


def _progress(total: int, enabled: bool):
    class Null:
        def update(self, n):
            pass

        def close(self):
            pass

    if not enabled or total == 0:
        return Null()
    from tqdm import tqdm

    return tqdm(total=total, unit="notebook", desc="grading", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------
# nbgrader, in this process, with the recorded outputs instead of its Execute step


def _nbgrader_config(course: Path):
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.merge(Config({
        "CourseDirectory": {"root": str(course.resolve())},
        "Autograde": {"autograde_preprocessors": [
            "autograder.grade.RecordedOutputs", "nbgrader.preprocessors.IgnorePattern",
            "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
            "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
            "nbgrader.preprocessors.CheckCellMetadata"]},
    }))
    return config


def _nbgrader_pass(course: Path, pairs: list[tuple[str, str]], log, jobs: int = 1) -> dict:
    """nbgrader's Autograde then GenerateFeedback for every (student, chapter): `jobs` processes at
    a time (forked from this one, which has imported nbgrader), each taking every jobs-th pair.
    Writes to the gradebook (Autograde) take a lock, one at a time; feedback (most of the time)
    runs in parallel. Each pair's scoring depends on that notebook alone: grades do not change
    with `jobs`."""
    import nbgrader.converters  # noqa: F401 - imported once, here, before any fork

    jobs = max(1, min(jobs, len(pairs)))
    if jobs == 1:
        failed, seconds = _nbgrader_some(course, pairs)
        return {"failed": failed, "seconds": seconds}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [pairs[k::jobs] for k in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(_nbgrader_some, [course] * jobs, chunks))
    position = {pair: n for n, pair in enumerate(pairs)}
    failed = sorted((f for part, _ in parts for f in part), key=lambda f: position.get((f[0], f[1]), 0))
    seconds = {name: sum(s.get(name, 0.0) for _, s in parts) for name in ("Autograde", "GenerateFeedback")}
    return {"failed": failed, "seconds": seconds}


def _nbgrader_some(course: Path, pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str, str]], dict]:
    """Score and write feedback for `pairs`, in this process; return what failed and the seconds
    each converter took (summed)."""
    import fcntl

    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    config = _nbgrader_config(course)
    failed, seconds = [], {"Autograde": 0.0, "GenerateFeedback": 0.0}
    quiet = logging.getLogger("buildgpt-nbgrader")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    cwd = os.getcwd()
    os.chdir(course)  # nbgrader resolves some paths from the working folder
    warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's own sessions
    lock = open(course / ".gradebook.lock", "a")
    try:
        for sid, slug in pairs:
            for converter in (Autograde, GenerateFeedback):
                coursedir = CourseDirectory(config=config, log=quiet)
                coursedir.assignment_id, coursedir.student_id = slug, sid
                app = converter(coursedir=coursedir, config=config, log=quiet)
                app.force = True
                if converter is Autograde:
                    app.create_student = True
                try:
                    if converter is Autograde:  # it writes the gradebook: one process at a time
                        fcntl.flock(lock, fcntl.LOCK_EX)
                    start = time.perf_counter()  # the converter's own time, not the wait for the lock
                    try:
                        app.start()
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
                        seconds[converter.__name__] += time.perf_counter() - start
                except Exception as exc:  # noqa: BLE001 - nbgrader raises its own kinds; keep grading the others
                    failed.append((sid, slug, f"{converter.__name__}: {exc}".strip()[:300]))
                    break
    finally:
        lock.close()
        os.chdir(cwd)
    return failed, seconds


def _name_students(course: Path, names: dict[str, str]) -> None:
    """Give each student in the gradebook their own folder name, so that `nbgrader export` shows
    张伟, not the ASCII id nbgrader needs for folders."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sid, name in names.items():
            if sid != name:
                gb.update_or_create_student(sid, first_name=name, last_name="")


def scored_outputs(cell, recorded: dict | None, ran: dict | None) -> list:
    """A test cell's outputs as the course scores them: by errors only. Text on stderr (a
    warning) and a final value do not change the score (nbgrader would read them as a failure or
    as partial credit); a cell that did not run or failed has an error."""
    outputs = list((recorded or {}).get("outputs", []))
    status = (ran or {}).get("status") if (ran or {}).get("ran") else "not run"
    clean = []
    for o in outputs:
        o = dict(o)
        if o.get("output_type") == "stream" and o.get("name") == "stderr":
            o["name"] = "stdout"
        if o.get("output_type") == "execute_result":
            o["output_type"] = "display_data"
            o.pop("execution_count", None)
        clean.append(o)
    if status != "ok" and not any(o.get("output_type") == "error" for o in clean):
        clean.append({"output_type": "error", "ename": "NotRun", "evalue": "this test did not run to the end",
                      "traceback": ["NotRun: this test did not run to the end"]})
    if status == "ok":
        clean = [o for o in clean if o.get("output_type") != "error"]
    return [nbformat.from_dict(o) for o in clean]


try:
    from nbconvert.preprocessors import Preprocessor
except ImportError:  # the package's own import must not need nbconvert
    Preprocessor = object


class RecordedOutputs(Preprocessor):
    """nbgrader's Execute step, replaced: the outputs come from the sandbox's run of the same cells."""

    from traitlets import Bool

    enabled = Bool(True)  # nbconvert preprocessors are off unless enabled

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        path = Path(os.getcwd()) / RUNS / info["student"] / info["assignment"] / "result.json"
        record = json.loads(path.read_text()) if path.exists() else {"cells": [], "notebook": None}
        ran_nb = record.get("notebook") or {"cells": []}
        by_id = {c.get("id"): c for c in ran_nb.get("cells", [])}
        status = {r["index"]: r for r in record.get("cells", [])}
        index_of = {c.get("id"): i for i, c in enumerate(ran_nb.get("cells", []))}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            rec = by_id.get(cell.get("id"))
            ran = status.get(index_of.get(cell.get("id")))
            if nbgrader_meta(cell).get("grade"):
                cell.outputs = scored_outputs(cell, rec, ran)
            else:
                cell.outputs = [nbformat.from_dict(o) for o in (rec or {}).get("outputs", [])]
            cell.execution_count = (rec or {}).get("execution_count")
        return nb, resources


# ----------------------------------------------------------------------------------------
# grades.csv and the reports


def _name_of(course: Path, sid: str) -> str:
    for status in (course / RUNS / sid).glob("*/status.json"):
        return json.loads(status.read_text()).get("student", sid)
    return sid


def gradebook_rows(course: Path, chapters: list[Chapter]) -> list[dict]:
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
                status_file = course / RUNS / student.id / chapter.slug / "status.json"
                info = json.loads(status_file.read_text()) if status_file.exists() else {}
                row = {"student": info.get("student", student.id), "chapter": chapter.slug,
                       "status": info.get("status", "graded")}
                for g in sorted(nb.grades, key=lambda g: g.name):  # private tests add to their exercise
                    row[exercise_of(g.name)] = row.get(exercise_of(g.name), 0) + g.score
                row["total"], row["max"] = nb.score, nb.max_score
                rows.append(row)
    return rows


def write_grades(path: Path, rows: list[dict], problems: list[Problem], order: list[str]) -> None:
    """grades.csv, written to a temporary file first so a crash never leaves half a file."""
    graded = {(r["student"], r["chapter"]) for r in rows}
    rows = rows + [{"student": p.student, "chapter": p.chapter, "status": f"not graded: {p.reason}"}
                   for p in problems if p.student and (p.student, p.chapter) not in graded]
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


def write_report(out: Path, course: Path, chosen: list[Preflight], problems: list[Problem]) -> None:
    """report.txt and preflight/STUDENT.txt, from report.json (which `merge` combines across shards)."""
    notebooks = []
    for pre in chosen:
        status = json.loads((course / RUNS / student_id(pre.student) / pre.chapter / "status.json").read_text())
        text = [f"{pre.student}/{pre.file} ({pre.chapter}): {status['status']}"]
        text += [f"  - {line}" for line in status["report"]] or ["  - nothing to repair"]
        notebooks.append([pre.student, pre.chapter, text])
    data = {"problems": [asdict(p) for p in problems], "notebooks": notebooks}
    (out / "report.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    render_report(out, data)


def render_report(out: Path, data: dict) -> None:
    problems = sorted((Problem(**p) for p in data["problems"]), key=lambda p: (p.student, p.file, p.reason))
    notebooks = sorted(data["notebooks"], key=lambda n: (n[0], n[1]))
    lines = ["Submissions that could not be graded", ""]
    lines += [f"- {p.student + '/' if p.student else ''}{p.file}: {p.reason}" for p in problems] or ["(none)"]
    lines += ["", "What was found and done, per notebook graded in this run", ""]
    per_student: dict[str, list[str]] = {}
    for student, _, text in notebooks:
        lines += text
        per_student.setdefault(student, []).extend(text)
    for p in problems:
        if p.student:
            per_student.setdefault(p.student, []).append(f"{p.file}: NOT GRADED: {p.reason}")
    (out / "report.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = out / "preflight"
    folder.mkdir(parents=True, exist_ok=True)
    for student, text in per_student.items():
        (folder / f"{student_id(student)}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")


def _fmt(value):
    return f"{value:g}" if isinstance(value, float) else value
