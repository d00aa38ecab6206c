"""Chapters: where their sources live, and how a source becomes an nbgrader source notebook.

`solutions/NN-slug.md` is the single source of a chapter. `source_notebook` reads it with
jupytext, turns the course's short cell options (`:exercise:`, `:tests:`, `:points:`,
`:export:`) into nbgrader metadata, and adds the cells every student notebook has (the Colab
badge, the Colab set-up cell, the self-check cell). Everything else is generated from that.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import UserError

CHAPTER_NAME = re.compile(r"^(\d\d)-[a-z0-9-]+$")
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def find_root() -> Path:
    """The repository root: the folder holding solutions/ and _config.yml."""
    for candidate in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[1]):
        if (candidate / "solutions").is_dir() and (candidate / "_config.yml").is_file():
            return candidate
    raise UserError(
        "This command needs the course repository (a folder with solutions/ and _config.yml); "
        "run it from inside a clone of the course."
    )


@dataclass(frozen=True)
class Chapter:
    slug: str  # "00-pytorch"
    root: Path

    @property
    def number(self) -> str:
        return self.slug[:2]

    @property
    def source(self) -> Path:
        return self.root / "solutions" / f"{self.slug}.md"

    @property
    def student_notebook(self) -> Path:
        return self.root / "book" / f"{self.slug}.ipynb"


def list_chapters(root: Path) -> list[Chapter]:
    slugs = sorted(p.stem for p in (root / "solutions").glob("*.md") if CHAPTER_NAME.match(p.stem))
    return [Chapter(slug, root) for slug in slugs]


def pick_chapters(root: Path, names: list[str] | None) -> list[Chapter]:
    chapters = list_chapters(root)
    if not names:
        return chapters
    by_name = {c.slug: c for c in chapters} | {c.number: c for c in chapters}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UserError(
            f"Unknown chapter {unknown[0]!r}; the chapters are {', '.join(c.slug for c in chapters)}."
        )
    return [by_name[n] for n in names]


def course_config(root: Path) -> dict:
    """The repository URL and branch, written once in _config.yml."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = config.get("repository", {})
    url, branch = repo.get("url"), repo.get("branch", "main")
    if not url:
        raise UserError("_config.yml has no repository.url; add the course's repository URL there.")
    return {"url": url.rstrip("/"), "branch": branch}


# ----------------------------------------------------------------------------------------
# Cells every student notebook gets


def colab_url(config: dict, chapter: Chapter) -> str:
    path = config["url"].split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{path}/blob/{config['branch']}/book/{chapter.slug}.ipynb"


def _generated(cell, role: str):
    cell.id = role  # fixed ids, so the generated cells never shift the others'
    cell.metadata["buildgpt"] = {"generated": role}
    return cell


def badge_cell(config: dict, chapter: Chapter):
    cell = _generated(
        nbformat.v4.new_markdown_cell(
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(config, chapter)})"
        ),
        "colab-badge",
    )
    cell.metadata["tags"] = ["remove-cell"]  # the website has its own launch button, and works offline
    return cell


def setup_cell(config: dict):
    source = (
        "# Set-up: in Google Colab this installs the course (library and datasets); elsewhere it does nothing.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"buildgpt @ git+{config['url']}@{config['branch']}\"], check=True)"
    )
    cell = _generated(nbformat.v4.new_code_cell(source), "setup")
    cell.metadata["tags"] = ["remove-cell"]  # the website does not show it; Colab runs it
    return cell


def self_check_cells(chapter: Chapter):
    intro = nbformat.v4.new_markdown_cell(
        "## Check your work\n\n"
        "The cell below runs every test of this chapter against the code you wrote above, "
        "the hidden tests included, and prints your score per exercise. "
        "For a failing test it shows the message, never the test's code. "
        "Run it after running all the cells above (*Run all*)."
    )
    code = nbformat.v4.new_code_cell(f'from autograder import self_check\nself_check("{chapter.slug}", globals())')
    return [_generated(intro, "self-check-intro"), _generated(code, "self-check")]


# ----------------------------------------------------------------------------------------
# The source notebook


def read_source(chapter: Chapter):
    import jupytext

    try:
        return jupytext.reads(chapter.source.read_text(encoding="utf-8"), fmt="md:myst")
    except Exception as exc:  # jupytext's own errors are long; say where the problem is
        raise UserError(f"{chapter.source} is not a readable MyST notebook ({exc}); fix it and run the release again.")


def _nbgrader_metadata(cell, chapter: Chapter) -> None:
    """Translate the course's cell options into nbgrader metadata, checking them."""
    meta = cell.metadata
    where = f"{chapter.source.name}, cell {cell.id}"
    if "exercise" in meta:
        grade_id = meta["exercise"]
        if not str(grade_id).startswith(f"ex-{chapter.number}-"):
            raise UserError(f"{where}: exercise id {grade_id!r} must start with 'ex-{chapter.number}-'.")
        if SOLUTION_MARKERS[0] not in cell.source or SOLUTION_MARKERS[1] not in cell.source:
            raise UserError(f"{where}: exercise {grade_id} needs '### BEGIN SOLUTION' and '### END SOLUTION'.")
        meta["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                            "schema_version": 3, "solution": True, "task": False}
    elif "tests" in meta:
        grade_id = meta["tests"]
        if not str(grade_id).startswith(f"test-{chapter.number}-"):
            raise UserError(f"{where}: test id {grade_id!r} must start with 'test-{chapter.number}-'.")
        points = meta.get("points")
        if not isinstance(points, (int, float)) or points <= 0:
            raise UserError(f"{where}: test cell {grade_id} needs ':points: N' with N > 0.")
        meta["nbgrader"] = test_metadata(grade_id, points)


def test_metadata(grade_id: str, points: float) -> dict:
    """nbgrader's metadata of a locked, pointed test cell."""
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": 3, "solution": False, "task": False}


def source_notebook(chapter: Chapter, config: dict):
    """The instructor's notebook for nbgrader: solutions, hidden tests, nbgrader metadata."""
    nb = read_source(chapter)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:03d}"
        _nbgrader_metadata(cell, chapter)
    _check_exercises(nb, chapter)

    first = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0  # the badge goes under the title
    cells = nb.cells[:first] + [badge_cell(config, chapter), setup_cell(config)] + nb.cells[first:]
    cells += self_check_cells(chapter)
    nb.cells = cells
    nb.metadata["buildgpt"] = {
        "chapter": chapter.slug,
        "generated_from": f"solutions/{chapter.slug}.md by `python -m autograder release`; do not edit",
        "source_sha256": notebook_hash(nb),
    }
    return nb


def notebook_hash(nb) -> str:
    data = copy.deepcopy(nb)
    data.metadata.pop("buildgpt", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _check_exercises(nb, chapter: Chapter) -> None:
    answers = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    tests = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    for ids in (answers, tests):
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise UserError(f"{chapter.source.name}: grade id {sorted(dupes)[0]} is used twice.")
    names = lambda ids, prefix: {i[len(prefix):] for i in ids}
    a, t = names(answers, f"ex-{chapter.number}-"), names(tests, f"test-{chapter.number}-")
    if a != t:
        missing = sorted(a ^ t)[0]
        raise UserError(
            f"{chapter.source.name}: every exercise ex-{chapter.number}-NAME needs one test cell "
            f"test-{chapter.number}-NAME and the reverse; {missing!r} has only one of the two."
        )


# ----------------------------------------------------------------------------------------
# Reading cells


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def answer_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c).get("solution") and c.cell_type == "code"]


def test_cells(nb):
    return [c for c in nb.cells if nbgrader_meta(c).get("grade") and c.cell_type == "code"]


def exercise_of(test_id: str) -> str:
    """'test-00-center' -> 'ex-00-center'; an instructor's private test counts under its exercise
    ('test-00-center__private_1' -> 'ex-00-center', see autograder/private.py)."""
    return "ex-" + test_id[len("test-"):].split("__private_")[0]


def strip_markers(source: str, markers: tuple[str, str]) -> str:
    """Keep what lies between the markers, drop the marker lines."""
    return "\n".join(line for line in source.split("\n") if line.strip() not in markers)


def remove_region(source: str, markers: tuple[str, str], replacement: str | None = None) -> str:
    """Drop the lines between the markers (markers included), optionally putting `replacement`
    there at the begin marker's indentation."""
    out, inside = [], False
    for line in source.split("\n"):
        if line.strip() == markers[0]:
            inside = True
            if replacement is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + r for r in replacement.split("\n"))
        elif line.strip() == markers[1]:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # what nbgrader's ClearSolutions writes
