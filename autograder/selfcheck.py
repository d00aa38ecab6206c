"""The self-check: a chapter's tests, hidden ones included, run against a student's work.

Two ways in, one scoring rule (the rule nbgrader's autograde uses: a test cell earns its points
when it runs without an error, and nothing otherwise):
- `check_notebook(path)`: puts the hidden tests back into a copy of the notebook, runs it top to
  bottom in a fresh kernel, and scores each test cell (`python -m autograder check`);
- `self_check(chapter, globals())`: runs the tests against the live namespace of a running
  notebook (Colab keeps no notebook file on disk), from the chapter's last cell.
Both report a failing test by its message only, never by the test's code.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .chapters import nbgrader_meta, test_metadata
from .errors import UserError

TESTS_BUNDLE = Path(__file__).with_name("chapter_tests.json")
GRADING_ENV = "NBGRADER_EXECUTION"  # set by nbgrader while it grades; the self-check cell then stays quiet
TABLE_WIDTH = 100  # characters per line of the self-check table; longer messages wrap at word boundaries
MESSAGE_LIMIT = 800  # longer failure messages (a huge repr, say) are cut at a word boundary


@dataclass
class TestResult:
    exercise: str
    test_id: str
    points: float
    max_points: float
    message: str = ""  # why it failed; empty when it passed

    @property
    def passed(self) -> bool:
        return self.points == self.max_points


@dataclass
class Report:
    chapter: str
    results: list[TestResult]
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_total(self) -> float:
        return sum(r.max_points for r in self.results)

    def by_exercise(self) -> dict[str, float]:
        return {r.exercise: r.points for r in self.results}

    def table(self) -> str:
        width = max([len(r.exercise) for r in self.results] + [len("exercise")])
        lines = [f"Self-check of {self.chapter} (hidden tests included)", ""]
        score = lambda got, of: f"{got:g} / {of:g}"
        lines.append(f"{'exercise':<{width}}  {'points':>8}  result")
        indent = " " * (width + 2 + 8 + 2)
        for r in self.results:
            result = "pass" if r.passed else f"FAIL  {r.message}"
            first, *rest = wrap_words(result, max(TABLE_WIDTH - len(indent), 40))
            lines.append(f"{r.exercise:<{width}}  {score(r.points, r.max_points):>8}  {first}")
            lines += [indent + line for line in rest]
        lines.append(f"{'total':<{width}}  {score(self.total, self.max_total):>8}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@lru_cache(maxsize=None)
def _bundle() -> dict:
    return json.loads(TESTS_BUNDLE.read_text(encoding="utf-8"))


def chapter_tests(chapter: str) -> dict:
    bundle = _bundle()
    if chapter not in bundle:
        known = ", ".join(sorted(bundle))
        raise UserError(f"Unknown chapter {chapter!r}; the chapters are {known}.")
    return bundle[chapter]


def _tests(chapter: str) -> dict:
    return {k: v for k, v in chapter_tests(chapter).items() if not k.startswith("__")}


def failure_message(ename: str, evalue: str) -> str:
    """One line a student can act on, from an exception's name and value."""
    if ename == "NotImplementedError" and not evalue:
        return "not done yet: the stub still raises NotImplementedError"
    if ename == "NameError":
        return f"{ename}: {evalue} (run all the cells above, and keep the names the exercise asks for)"
    text = f"{ename}: {evalue}" if evalue else f"{ename} (no message)"
    text = " ".join(text.split())
    if len(text) <= MESSAGE_LIMIT:
        return text
    cut = text.rfind(" ", 0, MESSAGE_LIMIT - 3)
    return text[:cut if cut > MESSAGE_LIMIT // 2 else MESSAGE_LIMIT - 3] + "..."


def wrap_words(text: str, width: int) -> list[str]:
    """text in lines of at most `width` characters, broken only at spaces (a longer word keeps its line)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


# ----------------------------------------------------------------------------------------
# In a running notebook


def run_self_check(chapter: str, namespace: dict) -> Report:
    results = []
    for test_id, test in _tests(chapter).items():
        scope = dict(namespace)  # the tests may define names; the student's namespace stays as it was
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(test["source"], f"<tests {test_id}>", "exec"), scope)
        except BaseException as exc:  # noqa: BLE001 - a test may fail in any way, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            results.append(TestResult(test["exercise"], test_id, 0, test["points"],
                                      failure_message(type(exc).__name__, str(exc))))
        else:
            results.append(TestResult(test["exercise"], test_id, test["points"], test["points"]))
    return Report(chapter, results)


def self_check(chapter: str, namespace: dict) -> None:
    """Print the score of every exercise of `chapter`, testing the names in `namespace`."""
    if os.environ.get(GRADING_ENV):
        print("Self-check skipped: this notebook is being graded.")
        return
    try:
        print(run_self_check(chapter, namespace).table())
    except UserError as exc:
        print(exc)


# ----------------------------------------------------------------------------------------
# On a notebook file


def read_notebook(path: Path):
    import nbformat

    if not path.is_file():
        raise UserError(f"{path} does not exist; give the path of a chapter notebook (.ipynb).")
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # nbformat raises several kinds for broken files
        raise UserError(f"{path} is not a notebook (it is not valid notebook JSON); "
                        "download it again from Jupyter or Colab with File > Download .ipynb.")


def chapter_of(nb, path: Path) -> str:
    """The chapter a notebook belongs to: from its metadata, else from its file name."""
    from .preflight import chapter_from_name

    slug = nb.metadata.get("buildgpt", {}).get("chapter")
    if slug:
        return slug
    slug = chapter_from_name(path.name, [k for k in _bundle()])
    if slug:
        return slug
    raise UserError(f"Cannot tell which chapter {path.name} is; name it like one of "
                    f"{', '.join(k + '.ipynb' for k in sorted(_bundle()))}, or pass --chapter.")


def restore_tests(nb, chapter: str) -> list[str]:
    """Put every test cell back in full (hidden tests included); return the ids not found."""
    tests = _tests(chapter)
    by_id = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells if c.cell_type == "code"}
    missing = []
    for test_id, test in tests.items():
        cell = by_id.get(test_id)
        if cell is None:  # metadata lost (some editors drop it): a locked cell keeps its source
            cell = next((c for c in nb.cells if c.cell_type == "code"
                         and c.source.strip() == test["released_source"].strip()), None)
        if cell is None:
            missing.append(test_id)
            continue
        cell.source = test["source"]
        cell.metadata["nbgrader"] = test_metadata(test_id, test["points"])
    return missing


def clean_copy(path: Path, nb, chapter: str):
    """The notebook the grader would run: the preflight's clean copy when the course repository is
    here (release and sources), else the notebook itself with its test cells restored in full."""
    from .preflight import Preflight, build

    notes = []
    try:
        from .chapters import course_config, find_root, list_chapters, source_notebook

        root = find_root()
        ch = next(c for c in list_chapters(root) if c.slug == chapter)
        import nbformat

        release = nbformat.read(ch.student_notebook, as_version=4)
        source = source_notebook(ch, course_config(root))
    except Exception:  # noqa: BLE001 - no repository (an installed package): repair less, still grade
        release = None
    if release is not None:
        pre = build(Preflight("", path.name, chapter), nb, release, source)
        if not pre.fatal:
            return pre.executable, pre.test_ids, pre.notes + pre.info
        notes.append(pre.fatal)
    missing = restore_tests(nb, chapter)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    ids = [c.id for c in nb.cells if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("grade_id") not in missing]
    return nb, ids, notes


def check_notebook(path: Path, chapter: str | None = None, timeout: int = 600, limits=None) -> Report:
    """Run a student's notebook the way `grade` does (preflight, sandbox, guard) and score it."""
    import nbformat

    from .sandbox import Job, Limits, run_many

    nb = read_notebook(path)
    chapter = chapter or chapter_of(nb, path)
    tests = _tests(chapter)
    exe, test_ids, notes = clean_copy(path, nb, chapter)
    limits = limits or Limits(cell_timeout=timeout, budget=max(1800, 3 * timeout))
    with tempfile.TemporaryDirectory(prefix="buildgpt-check-") as tmp:  # nothing of the run stays
        clean = Path(tmp) / "clean.ipynb"
        nbformat.write(exe, clean)
        record = run_many([Job(path.name, clean, Path(tmp) / "result.json", test_ids)], limits, 1)[path.name]
    if record.get("stopped"):
        notes.append(f"stopped early: {record['stopped']}; the tests after that point count as failed")
    ran = {r["index"]: r for r in record.get("cells", [])}
    cells = (record.get("notebook") or {}).get("cells", [])
    by_id = {}
    for index, cell in enumerate(cells):
        gid = nbgrader_meta(cell).get("grade_id")
        if cell.get("id") in test_ids and gid:
            by_id[gid] = (cell, ran.get(index, {}))
    results = []
    for test_id, test in tests.items():
        if test_id not in by_id:
            results.append(TestResult(test["exercise"], test_id, 0, test["points"],
                                      "its test cell is missing from the notebook"))
            continue
        cell, status = by_id[test_id]
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if status.get("ran") and status.get("status") == "ok":
            results.append(TestResult(test["exercise"], test_id, test["points"], test["points"]))
        elif errors:
            results.append(TestResult(test["exercise"], test_id, 0, test["points"],
                                      failure_message(errors[-1].get("ename", ""), errors[-1].get("evalue", ""))))
        else:
            results.append(TestResult(test["exercise"], test_id, 0, test["points"], "the test cell never ran"))
    return Report(chapter, results, notes)
