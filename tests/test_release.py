"""The release: generated files in sync with solutions/, stale ones named, nothing leaked."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.chapters import nbgrader_meta
from notebooks import CHAPTERS, ROOT, exercises, secret_lines


def release(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "autograder", "release", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_release_is_in_sync():
    result = release("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_names_every_stale_file(tmp_path):
    for part in ("solutions", "book", "buildgpt", "autograder", "_config.yml"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, tmp_path / part)
    chapter = CHAPTERS[0]
    source = tmp_path / "solutions" / f"{chapter.slug}.md"
    source.write_text(source.read_text() + "\nOne more sentence.\n")
    export = next(p for p in (tmp_path / "buildgpt").glob("*.py") if p.read_text().startswith("# Generated"))
    export.write_text(export.read_text() + "\n# edited by hand\n")
    result = release("--check", cwd=tmp_path)
    assert result.returncode == 1
    assert f"stale: book/{chapter.slug}.ipynb" in result.stdout
    assert f"stale: buildgpt/{export.name}" in result.stdout


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_student_notebook_is_nbgraders_release(chapter):
    nb = nbformat.read(chapter.student_notebook, as_version=4)
    text = nbformat.writes(nb)
    answers = {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("solution")}
    assert set(answers) == {e for e, _ in exercises(chapter)}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta:
            assert meta.get("checksum"), "nbgrader checksums are kept"
        if meta.get("solution"):
            assert "raise NotImplementedError()" in cell.source and not cell.outputs
    for line in secret_lines(chapter):
        assert line not in text, f"the student edition shows a solution or hidden line: {line!r}"
