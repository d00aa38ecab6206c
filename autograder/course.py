"""An nbgrader course directory built from solutions/, and the nbgrader commands run on it.

The folder is a plain nbgrader course: `source/NN-slug/NN-slug.ipynb` per chapter, an
`nbgrader_config.py`, and (after grading) `submitted/`, `autograded/`, `feedback/` and
`gradebook.db`. Instructors who know nbgrader can run its commands there directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from .chapters import Chapter, course_config, source_notebook
from .errors import UserError

CONFIG_TEMPLATE = Path(__file__).with_name("nbgrader_config.py")


def build_course(course_dir: Path, chapters: list[Chapter]) -> dict[str, nbformat.NotebookNode]:
    """Write the config and every chapter's source notebook; return the source notebooks."""
    course_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIG_TEMPLATE, course_dir / "nbgrader_config.py")
    config = course_config(chapters[0].root) if chapters else {}
    sources = {}
    for chapter in chapters:
        nb = source_notebook(chapter, config)
        path = course_dir / "source" / chapter.slug / f"{chapter.slug}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        sources[chapter.slug] = nb
    return sources


def nbgrader(course_dir: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run one nbgrader command in the course folder; a failure becomes one sentence."""
    command = [sys.executable, "-m", "nbgrader", *args]
    env = dict(os.environ)  # nbgrader runs `alembic` from PATH: make this environment's scripts visible
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(command, cwd=course_dir, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line or "Error" in line]
        detail = errors[-1].strip() if errors else (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise UserError(f"`nbgrader {' '.join(args)}` failed in {course_dir}: {detail}")
    return result


def generate_assignment(course_dir: Path, slug: str) -> nbformat.NotebookNode:
    nbgrader(course_dir, "generate_assignment", slug, "--force")
    return nbformat.read(course_dir / "release" / slug / f"{slug}.ipynb", as_version=4)
