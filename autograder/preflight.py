"""Preflight: turn whatever a student handed in into a clean notebook nbgrader can grade.

The clean notebook is built from the release (the student edition of the chapter), cell by cell:
- every cell the release has is there, in the release's order, as released: demo cells a student
  deleted come back, and test cells always come from the release (an edited, moved, duplicated or
  deleted test cell changes nothing);
- each answer cell holds the student's answer: found by its nbgrader id, or, when an editor
  dropped the metadata (Colab does), by where it sits between the cells around it and by the
  name it defines; of duplicated answers, the last one run counts (the highest execution count),
  else the last in the notebook;
- the student's own extra code cells are kept, after the cell they followed.
Everything done is written down (`Preflight.notes`); a file that cannot be repaired (not a
notebook, no chapter, none of the chapter's cells) gets `fatal` set and is never graded as 0.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .chapters import nbgrader_meta
from .private import is_private

MAX_BYTES = 64 << 20  # a notebook larger than this is not read (outputs of a runaway loop, or not a notebook)


@dataclass
class Preflight:
    student: str
    file: str
    chapter: str = ""
    notes: list[str] = field(default_factory=list)  # what was repaired, one sentence each
    info: list[str] = field(default_factory=list)  # what was found and is no repair (the student's own cells)
    fatal: str = ""  # why it cannot be graded; empty when it can
    submission: object = None  # the clean notebook for nbgrader's submitted/ (released test cells)
    executable: object = None  # the same with the hidden tests in the test cells, for the sandbox
    test_ids: list[str] = field(default_factory=list)  # cell ids of the test cells in `executable`
    flags: list[str] = field(default_factory=list)  # what looks like cheating, with the evidence

    @property
    def repaired(self) -> bool:
        return bool(self.notes)


def chapter_from_name(name: str, slugs: list[str]) -> str:
    """'Copy of 03-attention (1).ipynb' -> '03-attention'; '' when the name says no chapter."""
    stem = name[:-len(".ipynb")] if name.lower().endswith(".ipynb") else name
    stem = stem.lower().replace("_", "-").replace(" ", "-")
    for slug in sorted(slugs, key=len, reverse=True):
        if slug in stem:
            return slug
    numbers = {s[:2]: s for s in slugs}
    match = re.search(r"(?:^|[^0-9])(\d\d)(?:[^0-9]|$)", stem)
    if match and match.group(1) in numbers and re.search(r"\d\d-[a-z]", stem):
        return numbers[match.group(1)]
    return ""


def read_cells(raw: bytes):
    """A notebook from bytes, leniently: any JSON with a list of cells will do. None if not."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "worksheets" in data:  # nbformat 3
        try:
            return nbformat.reads(json.dumps(data), as_version=4)
        except Exception:  # noqa: BLE001 - nbformat's errors vary
            return None
    cells = data.get("cells")
    if not isinstance(cells, list):
        return None
    nb = nbformat.v4.new_notebook()
    nb.metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    for raw_cell in cells:
        if not isinstance(raw_cell, dict):
            continue
        kind = raw_cell.get("cell_type")
        source = raw_cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source if isinstance(source, str) else ""
        metadata = raw_cell.get("metadata") if isinstance(raw_cell.get("metadata"), dict) else {}
        if kind == "code":
            cell = nbformat.v4.new_code_cell(source)
            count = raw_cell.get("execution_count")
            cell.execution_count = count if isinstance(count, int) else None
        elif kind in ("markdown", "raw"):
            cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_raw_cell)(source)
        else:
            continue
        cell.metadata = metadata
        nb.cells.append(cell)
    return nb


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _defined_name(source: str) -> str:
    match = re.search(r"^(?:def|class)\s+([A-Za-z_]\w*)", source, re.M)
    return match.group(1) if match else ""


def repair(pre: Preflight, raw: bytes, release, source, slugs: list[str]) -> Preflight:
    """Fill `pre` from the submitted bytes, the chapter's release and its source notebook."""
    if len(raw) > MAX_BYTES:
        pre.fatal = f"it is larger than {MAX_BYTES >> 20} MB; ask the student to clear all outputs and save again"
        return pre
    nb = read_cells(raw)
    if nb is None:
        pre.fatal = "it is not a notebook (not valid notebook JSON); ask for a fresh download (File > Download .ipynb)"
        return pre
    return build(pre, nb, release, source)


def build(pre: Preflight, nb, release, source) -> Preflight:
    rel = release.cells
    full = {nbgrader_meta(c).get("grade_id"): c.source for c in source.cells if nbgrader_meta(c).get("grade")}
    answers = {nbgrader_meta(c)["grade_id"]: i for i, c in enumerate(rel) if nbgrader_meta(c).get("solution")}
    tests = {nbgrader_meta(c)["grade_id"]: i for i, c in enumerate(rel) if nbgrader_meta(c).get("grade")}
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(rel):
        if nbgrader_meta(c).get("grade_id") not in answers:
            by_source.setdefault((c.cell_type, _norm(c.source)), []).append(i)
    stubs = {(c.cell_type, _norm(rel[i].source)): gid for gid, i in answers.items() for c in [rel[i]]}

    # 1. What each submitted cell is: ('answer', id), ('test', id), ('same', release index) or ('extra',)
    kinds = []
    last_match = -1
    lost_meta = 0
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        key = (cell.cell_type, _norm(cell.source))
        if gid in answers and cell.cell_type == "code":
            kinds.append(("answer", gid))
        elif gid in tests:
            kinds.append(("test", gid))
        elif key in by_source:
            options = by_source[key]
            index = next((i for i in options if i > last_match), options[0])
            kinds.append(("same", index))
            if nbgrader_meta(rel[index]).get("grade"):
                lost_meta += 1
        elif key in stubs:
            kinds.append(("answer", stubs[key]))
            lost_meta += 1
        else:
            kinds.append(("extra",))
        if kinds[-1][0] in ("same",):
            last_match = kinds[-1][1]

    def release_index(kind) -> int | None:
        if kind[0] == "answer":
            return answers[kind[1]]
        if kind[0] == "test":
            return tests[kind[1]]
        if kind[0] == "same":
            return kind[1]
        return None

    matched = sum(1 for k in kinds if k[0] != "extra")
    if matched == 0:
        pre.fatal = (f"it holds none of the cells of {pre.chapter}; is it the right file? "
                     "(ask for the chapter notebook the student worked in)")
        return pre

    # 2. Answers whose metadata was lost: the extra code cell between the same neighbours that
    #    defines the stub's name (or looks most like the stub)
    found = {k[1] for k in kinds if k[0] == "answer"}
    for gid, r_index in answers.items():
        if gid in found:
            continue
        before = [j for j, k in enumerate(kinds) if release_index(k) is not None and release_index(k) < r_index]
        after = [j for j, k in enumerate(kinds) if release_index(k) is not None and release_index(k) > r_index]
        lo = max(before) if before else -1
        hi = min([j for j in after if j > lo], default=len(kinds))
        window = [j for j in range(lo + 1, hi) if kinds[j][0] == "extra" and nb.cells[j].cell_type == "code"
                  and nb.cells[j].source.strip()]
        if not window:
            continue
        stub = rel[r_index].source
        name = _defined_name(stub)
        same_name = [j for j in window if name and _defined_name(nb.cells[j].source) == name]
        pick = same_name[-1] if same_name else max(
            window, key=lambda j: difflib.SequenceMatcher(None, stub, nb.cells[j].source).ratio())
        kinds[pick] = ("answer", gid)
        lost_meta += 1
    if lost_meta:
        pre.notes.append(f"nbgrader metadata was missing from {lost_meta} cell(s) (an editor such as Colab drops it); "
                         "restored from the release by matching the cells")

    # 3. Duplicates: the last answer run counts
    chosen: dict[str, int] = {}
    for gid in answers:
        copies = [j for j, k in enumerate(kinds) if k == ("answer", gid)]
        if not copies:
            pre.notes.append(f"the answer cell of {gid} is missing; it is graded as not done")
            continue
        if len(copies) > 1:
            counts = {j: nb.cells[j].get("execution_count") for j in copies}
            ran = [j for j in copies if isinstance(counts[j], int)]
            pick = max(ran, key=lambda j: counts[j]) if ran else copies[-1]
            how = "the one run last" if ran else "the last one in the notebook"
            pre.notes.append(f"the answer cell of {gid} appears {len(copies)} times; {how} counts")
        else:
            pick = copies[0]
        chosen[gid] = pick
    for gid, r_index in tests.items():
        copies = [j for j, k in enumerate(kinds) if k == ("test", gid) or (k[0] == "same" and k[1] == r_index)]
        if not copies:
            if not is_private(gid):  # the instructor's private tests are never in a student's copy
                pre.notes.append(f"the test cell {gid} was deleted; put back from the release")
        elif len(copies) > 1:
            pre.notes.append(f"the test cell {gid} appears {len(copies)} times; it runs once, from the release")
        if any(_norm(nb.cells[j].source) != _norm(rel[r_index].source) for j in copies):
            pre.notes.append(f"the test cell {gid} was edited; the release's version is graded")
    positions = [release_index(kinds[j]) for j in sorted(chosen.values())]
    test_positions = [tests[k[1]] for k in kinds if k[0] == "test"]
    if positions != sorted(positions) or test_positions != sorted(test_positions):
        pre.notes.append("cells were moved; the answers and tests run in the release's order")

    # 4. Extra cells follow the cell they came after
    follows: dict[int, list[int]] = {}
    anchor = -1
    extras = 0
    for j, kind in enumerate(kinds):
        r = release_index(kind)
        if kind[0] == "answer" and chosen.get(kind[1]) != j:
            continue  # a losing duplicate
        if r is not None:
            anchor = r
        elif nb.cells[j].source.strip():
            follows.setdefault(anchor, []).append(j)
            extras += nb.cells[j].cell_type == "code"
    if extras:
        pre.info.append(f"{extras} extra code cell(s) of the student's own were kept where they were")
    student_cells = [*chosen.values(), *(j for js in follows.values() for j in js)]
    pre.flags += uses_own_answers(pre.chapter, [nb.cells[j].source for j in sorted(student_cells)
                                                if nb.cells[j].cell_type == "code"])
    demo_missing = [i for i, c in enumerate(rel) if c.cell_type == "code" and i not in answers.values()
                    and i not in tests.values() and not any(release_index(k) == i for k in kinds)]
    if demo_missing:
        pre.notes.append(f"{len(demo_missing)} code cell(s) of the release were missing; put back")

    # 5. The clean notebooks
    sub = copy.deepcopy(release)
    sub.cells = []
    exe_cells = []
    pre.test_ids = []

    def emit(cell, full_source=None):
        n = len(sub.cells)
        cell = copy.deepcopy(cell)
        cell.id = f"cell-{n:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        sub.cells.append(cell)
        exe = copy.deepcopy(cell)
        if full_source is not None:
            exe.source = full_source
        exe_cells.append(exe)

    for extra in follows.get(-1, []):
        emit(_student_cell(nb.cells[extra]))
    for i, cell in enumerate(rel):
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in answers:
            answer = copy.deepcopy(cell)
            if gid in chosen:
                answer.source = nb.cells[chosen[gid]].source
            emit(answer)
        elif gid in tests:
            emit(cell, full_source=full.get(gid, cell.source))
            pre.test_ids.append(sub.cells[-1].id)
        elif (cell.metadata.get("buildgpt") or {}).get("generated") == "self-check":
            emit(cell, full_source="# (the self-check does not run while grading: the grader runs the tests)")
        else:
            emit(cell)
        for extra in follows.get(i, []):
            emit(_student_cell(nb.cells[extra]))
    exe = copy.deepcopy(sub)
    exe.cells = exe_cells
    pre.submission, pre.executable = sub, exe
    return pre


def own_modules(chapter: str) -> list[str]:
    """buildgpt's modules made from this chapter's solutions (`buildgpt.attention` for chapter 3):
    they hold the answers the student is asked to write."""
    package = Path(__file__).resolve().parent.parent / "buildgpt"
    found = []
    for path in sorted(package.glob("*.py")):
        with path.open(encoding="utf-8") as f:
            first = f.readline()
        if first.startswith("# Generated by") and f"solutions/{chapter}.md" in first:
            found.append(path.stem)
    return found


def uses_own_answers(chapter: str, sources: list[str]) -> list[str]:
    """Evidence, one sentence each, that the student's own cells (answers and extra cells) use the
    course's module of the chapter being graded, i.e. the reference answers."""
    found = []
    for name in own_modules(chapter):
        pattern = re.compile(rf"buildgpt\s*\.\s*{name}\b|from\s+buildgpt\s+import\s+[^\n]*\b{name}\b"
                             rf"|['\"]buildgpt[./]{name}['\"./]")
        for source in sources:
            for line in source.splitlines():
                if pattern.search(line):
                    found.append(f"the student's code uses buildgpt.{name}, the course's answers to this chapter: "
                                 f"{line.strip()[:120]!r}")
    return list(dict.fromkeys(found))


def _student_cell(cell):
    """An extra cell of the student's, without any nbgrader metadata it may carry."""
    out = copy.deepcopy(cell)
    out.metadata = {k: v for k, v in out.metadata.items() if k not in ("nbgrader", "buildgpt")}
    return out


def preflight(student: str, path: Path, slugs: list[str], release_by_chapter: dict, source_by_chapter: dict) -> Preflight:
    pre = Preflight(student, path.name, chapter_from_name(path.name, slugs))
    if pre.chapter and path.stem != pre.chapter:
        pre.notes.append(f"the file name {path.name!r} was read as chapter {pre.chapter}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        pre.fatal = f"it could not be read ({exc.strerror})"
        return pre
    if not pre.chapter:
        nb = read_cells(raw)
        meta = nb.metadata.get("buildgpt") if nb is not None else None
        if isinstance(meta, dict) and meta.get("chapter") in slugs:
            pre.chapter = meta["chapter"]
            pre.notes.append(f"the file name {path.name!r} says no chapter; its metadata says {pre.chapter}")
    if not pre.chapter:
        if read_cells(raw) is None:
            pre.fatal = "it is not a notebook (not valid notebook JSON), and its name is not a chapter's"
        else:
            pre.fatal = ("neither its name nor its metadata says which chapter it is; rename it like "
                         + ", ".join(s + ".ipynb" for s in slugs[:2]) + ", ...")
        return pre
    return repair(pre, raw, release_by_chapter[pre.chapter], source_by_chapter[pre.chapter], slugs)


def report_text(pre: Preflight) -> str:
    lines = [f"{pre.file} ({pre.chapter or 'no chapter'}):"]
    if pre.fatal:
        lines.append(f"  NOT GRADED: {pre.fatal}")
    lines += [f"  - {n}" for n in pre.notes + pre.info] or ["  - nothing to repair"]
    return "\n".join(lines)
