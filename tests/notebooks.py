"""Helpers for the tests: the repository, its chapters, and running (parts of) chapter notebooks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from autograder.chapters import (STUB, SOLUTION_MARKERS, Chapter, answer_cells, course_config,
                                 list_chapters, nbgrader_meta, remove_region, source_notebook)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = list_chapters(ROOT)


def solution_notebook(chapter: Chapter):
    """The chapter as nbgrader's source: solutions and hidden tests in place."""
    return source_notebook(chapter, course_config(ROOT))


def execute(nb, cwd: Path, allow_errors: bool = False, timeout: int = 900):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def errors_of(cell) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def run_exercise_variants(chapter: Chapter, exercise_id: str, variants: dict[str, str], cwd: Path) -> dict[str, list[str]]:
    """Run the chapter up to the exercise once, then, for each variant of its answer cell, the
    answer and everything up to its test cell in the same kernel; return each variant's test errors.

    Every other answer keeps its solution. Before each variant the names the solution defines are
    deleted, so a variant that fails to define them cannot borrow an earlier definition.
    """
    import ast

    import nbformat
    from nbclient import NotebookClient

    nb = solution_notebook(chapter)
    test_id = "test-" + exercise_id[len("ex-"):]
    cells = [c for c in nb.cells if c.metadata.get("buildgpt", {}).get("generated") != "setup"]
    answer = next(i for i, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == exercise_id)
    test = next(i for i, c in enumerate(cells) if nbgrader_meta(c).get("grade_id") == test_id)
    tree = ast.parse(remove_region(cells[answer].source, SOLUTION_MARKERS, replacement="pass"))
    defined = sorted({t.id for node in tree.body for t in ast.walk(node) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)}
                     | {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))})

    nb.cells = cells[:answer]
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    results = {}
    with client.setup_kernel():
        for index, cell in enumerate(list(nb.cells)):
            client.execute_cell(cell, index)
        for name, source in variants.items():
            run = [nbformat.v4.new_code_cell(f"for _name in {defined!r}:\n    globals().pop(_name, None)"),
                   nbformat.v4.new_code_cell(source),
                   *[nbformat.v4.new_code_cell(c.source) for c in cells[answer + 1: test + 1] if c.cell_type == "code"]]
            for cell in run:
                nb.cells.append(cell)
                client.execute_cell(cell, len(nb.cells) - 1)
            results[name] = errors_of(run[-1])
    return results


def stub_of(source: str) -> str:
    """What nbgrader's ClearSolutions leaves of an answer cell."""
    return remove_region(source, SOLUTION_MARKERS, replacement=STUB)


def load_mutants(chapter: Chapter) -> dict[str, dict[str, str]]:
    path = ROOT / "tests" / "mutants" / f"{chapter.slug}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"mutants_{chapter.number}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


def exercises(chapter: Chapter) -> list[tuple[str, str]]:
    """(grade id, answer cell source) of every exercise of the chapter."""
    return [(nbgrader_meta(c)["grade_id"], c.source) for c in answer_cells(solution_notebook(chapter))]


def marked_lines(source: str, markers: tuple[str, str]) -> list[str]:
    """The lines of a cell between two markers, long enough to be telling if they leaked."""
    lines, inside = [], False
    for line in source.split("\n"):
        if line.strip() in markers:
            inside = line.strip() == markers[0]
        elif inside and len(line.strip()) > 20:
            lines.append(line.strip())
    return lines


def hidden_lines(source: str) -> list[str]:
    from autograder.chapters import HIDDEN_MARKERS

    return marked_lines(source, HIDDEN_MARKERS)


def solution_lines(source: str) -> list[str]:
    return marked_lines(source, SOLUTION_MARKERS)


def secret_lines(chapter: Chapter) -> list[str]:
    """Solution and hidden-test lines of a chapter that must never reach students or the website.

    Lines any chapter also writes outside those regions (boilerplate such as
    `raise AssertionError(` in a visible test or a demo) are public by the author's choice and
    are left out."""
    from autograder.chapters import HIDDEN_MARKERS

    visible = {line.strip() for ch in CHAPTERS for c in solution_notebook(ch).cells
               for line in remove_region(remove_region(c.source, HIDDEN_MARKERS), SOLUTION_MARKERS).split("\n")}
    cells = solution_notebook(chapter).cells
    public = "\n".join(visible)  # a secret line that is part of a public one is boilerplate, not a leak
    return [line for c in cells for line in solution_lines(c.source) + hidden_lines(c.source) if line not in public]


def solved_notebook(chapter: Chapter, answers: dict[str, str] | None = None):
    """The released student notebook of the chapter with every answer cell filled in as a student
    would: the solution's code (markers removed), or `answers[grade_id]` where given."""
    import nbformat

    from autograder.chapters import strip_markers

    solutions = {gid: strip_markers(source, SOLUTION_MARKERS) for gid, source in exercises(chapter)}
    nb = nbformat.read(chapter.student_notebook, as_version=4)
    for cell in answer_cells(nb):
        gid = nbgrader_meta(cell)["grade_id"]
        cell.source = (answers or {}).get(gid, solutions[gid])
    return nb
