"""`python -m autograder assemble NOTEBOOKS... --out mygpt/`: the student's own GPT as a package.

The completed chapters add up to a GPT. This command takes a student's notebooks and writes a
package with buildgpt's module layout (mygpt/attention.py, mygpt/model.py, mygpt/trainer.py, ...)
that the course's commands run with `--impl mygpt`:
- every function and class an exercise exports is the student's answer, read by its grade id from
  the notebook as grading reads it (the preflight repairs lost metadata, duplicated cells and
  renamed files);
- the chapter glue (export cells that are not exercises) comes from the course's solutions, so
  with correct answers the package runs exactly the code buildgpt runs;
- `from buildgpt.<module> import ...` inside those cells points at the package itself, so the
  student's model really uses the student's attention. Data files stay in buildgpt.
Before anything is written, every chapter's tests (hidden ones included, the self-check's engine)
run against the assembled modules in a fresh process: an answer that only works inside its notebook
fails there. Unsolved or failing exercises are listed in one table; `--fill-missing` takes the
reference answer for those only and says so in REPORT.md and whenever a command loads the package.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .chapters import (SOLUTION_MARKERS, answer_cells, course_config, find_root, list_chapters, nbgrader_meta,
                       strip_markers)
from .errors import UserError

MARK = "ASSEMBLY"  # the dict in the package's __init__.py that buildgpt.impl reads
HEADER = "# Assembled by `python -m autograder assemble` from {origin}; assemble again rather than edit.\n"
DEMO_STATEMENTS = (ast.Expr, ast.Assert, ast.For, ast.AsyncFor, ast.While)  # a cell's demo lines, not its definitions


@dataclass
class Exercise:
    chapter: str
    grade_id: str
    module: str | None  # the buildgpt module it is exported to, None if the chapter does not export it
    reference: str  # the solution's code (markers removed)
    names: list[str]  # what the exercise must define
    notebook: str = ""  # the student's file it came from; empty when no notebook of its chapter was given
    student: str | None = None  # the student's code, cleaned for a module; None when there is none
    why: str = ""  # why it cannot be used; empty while it can
    notebook_names: set = field(default_factory=set)  # what the student's notebook binds outside this answer

    @property
    def where(self) -> str:
        return f"{self.notebook}, {self.grade_id}" if self.notebook else self.grade_id


@dataclass
class Plan:
    package: str
    exercises: dict[str, Exercise] = field(default_factory=dict)  # grade id -> exercise, in book order
    parts: dict[str, list[tuple[str, str | None, str]]] = field(default_factory=dict)  # module -> (chapter, grade id, code)
    notebooks: dict[str, str] = field(default_factory=dict)  # chapter -> file name
    notes: list[str] = field(default_factory=list)  # repairs and other things worth knowing
    imports: dict[str, list[str]] = field(default_factory=dict)  # chapter -> the notebook's own import lines


# ----------------------------------------------------------------------------------------
# Reading code


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _top_names(tree) -> set[str]:
    """Names a module's top level binds: def, class, assignments, imports."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
                elif isinstance(sub, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    names.add(sub.name)
    return names


def _defined(tree) -> list[str]:
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _free_names(tree) -> list[str]:
    """Names the code reads that it never binds anywhere (its globals), in order of first use."""
    bound, loaded = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    seen = set()
    return [n for n in loaded if n not in bound and not hasattr(builtins, n) and n != "__file__"
            and not (n in seen or seen.add(n))]


def clean_cell(source: str) -> str:
    """A notebook cell as module code: IPython magics and shell lines out, and so are top-level
    statements that only show something (calls, prints, asserts, loops), which a module would run at import."""
    lines = source.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        lines = lines[1:]
    if any(line.lstrip().startswith(("%", "!")) for line in lines):
        from IPython.core.inputtransformer2 import TransformerManager

        lines = TransformerManager().transform_cell("\n".join(lines)).rstrip("\n").split("\n")
    text = "\n".join(lines)
    tree = _parse(text)
    if tree is None:
        return text  # the syntax error is reported with its line
    drop = set()
    for node in tree.body:
        if isinstance(node, DEMO_STATEMENTS):
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")


def _import_lines(source: str) -> list[tuple[str, set[str]]]:
    """The top-level import statements of a notebook cell, each with the names it binds."""
    text = clean_cell(source)
    tree = _parse(text)
    if tree is None:
        return []
    lines = text.split("\n")
    return [("\n".join(lines[node.lineno - 1: node.end_lineno]).strip(),
             {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"})
            for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)]


BUILDGPT_FROM = re.compile(r"^(\s*)from\s+buildgpt\.(\w+)(\s+import\b.*)$")
BUILDGPT_FROM_TOP = re.compile(r"^(\s*)from\s+buildgpt\s+import\s+(.+?)(\s*#.*)?$")
BUILDGPT_IMPORT_AS = re.compile(r"^(\s*)import\s+buildgpt\.(\w+)\s+as\s+(\w+)(\s*#.*)?$")


def rewrite_imports(code: str, modules: set[str], to: str = ".") -> str:
    """`from buildgpt.model import GPT` -> `from .model import GPT` for the modules the package has
    (or `from mygpt.model import GPT` with to="mygpt."); buildgpt.resources and the like stay."""
    top = to.rstrip(".") or "."
    out = []
    for line in code.split("\n"):
        m = BUILDGPT_FROM.match(line)
        if m and m.group(2) in modules:
            line = f"{m.group(1)}from {to}{m.group(2)}{m.group(3)}"
        m = BUILDGPT_FROM_TOP.match(line)
        if m and "(" not in m.group(2):
            names = [n.strip() for n in m.group(2).split(",") if n.strip()]
            ours = [n for n in names if n.split(" as ")[0].strip() in modules]
            theirs = [n for n in names if n not in ours]
            parts = ([f"{m.group(1)}from {top} import {', '.join(ours)}"] if ours else []) + (
                [f"{m.group(1)}from buildgpt import {', '.join(theirs)}"] if theirs else [])
            line = "\n".join(parts)  # a comment there spoke of buildgpt
        m = BUILDGPT_IMPORT_AS.match(line)
        if m and m.group(2) in modules:
            line = f"{m.group(1)}from {top} import {m.group(2)} as {m.group(3)}{m.group(4) or ''}"
        out.append(line)
    return "\n".join(out)


def reference_use(tree, names: list[str], modules: set[str]) -> str:
    """How a cell takes the exercise's own names from buildgpt instead of defining them; '' if not."""
    aliases = {}  # local name -> the buildgpt module (or package) it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "buildgpt":
            for a in node.names:
                if a.name == "*":
                    return f"`from {node.module} import *`"
                if a.name in names:
                    return f"`from {node.module} import {a.name}`"
                if node.module == "buildgpt":
                    aliases[a.asname or a.name] = f"buildgpt.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "buildgpt":
                    aliases[a.asname or "buildgpt"] = a.name if a.asname else "buildgpt"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            base = node.value
            chain = []
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                return f"`{'.'.join([aliases[base.id], *chain, node.attr])}`"
    return ""


# ----------------------------------------------------------------------------------------
# Finding the notebooks


def _signature(release) -> set[tuple[str, str]]:
    """The cells that mark a chapter: its prose and demo and test cells (not answers, not the shared set-up)."""
    from .preflight import _norm

    return {(c.cell_type, _norm(c.source)) for c in release.cells
            if not nbgrader_meta(c).get("solution") and not (c.metadata.get("buildgpt") or {}).get("generated")
            and len(c.source.strip()) > 40}


def gather(paths: list[Path]) -> list[tuple[Path, bool]]:
    """The notebooks to read, each with whether it was named itself (True) or found in a folder."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.ipynb")
                           if not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise UserError(f"{path} holds no notebooks (.ipynb); give the folder your chapter notebooks are in.")
            files += [(f, False) for f in found]
        elif path.is_file():
            if path.suffix.lower() != ".ipynb":
                raise UserError(f"{path.name} is not a notebook (.ipynb); give your chapter notebooks or their folder.")
            files.append((path, True))
        else:
            raise UserError(f"{path} does not exist; give your chapter notebooks (.ipynb) or the folder they are in.")
    return list(dict.fromkeys(files))


def identify(files: list[tuple[Path, bool]], releases: dict) -> tuple[dict[str, tuple[Path, object]], list[str]]:
    """chapter -> (file, notebook); and the notes. Raises UserError naming every notebook that is
    not a chapter, is of another chapter than its name says, or is the second of a chapter."""
    from .preflight import _norm, chapter_from_name, read_cells

    slugs = list(releases)
    signatures = {slug: _signature(nb) for slug, nb in releases.items()}
    problems, notes, found = [], [], {}
    for path, named in files:
        try:
            nb = read_cells(path.read_bytes())
        except OSError as exc:
            problems.append(f"{path.name} could not be read ({exc.strerror}).")
            continue
        if nb is None:
            problems.append(f"{path.name} is not a notebook (not valid notebook JSON); download it again with File > Download .ipynb.")
            continue
        cells = {(c.cell_type, _norm(c.source)) for c in nb.cells}
        score = {slug: len(cells & sig) for slug, sig in signatures.items()}
        content = max(score, key=score.get)
        meta = nb.metadata.get("buildgpt") if isinstance(nb.metadata.get("buildgpt"), dict) else {}
        by_name = chapter_from_name(path.name, slugs)
        said = by_name or (meta.get("chapter") if meta.get("chapter") in slugs else "")
        if score[content] == 0 and not named and not by_name:
            notes.append(f"skipped {path.name}: it is not one of the course's chapters")
            continue
        if score[content] == 0:
            problems.append(f"{path.name} holds none of the course's chapter cells; give the chapter notebook you worked in.")
            continue
        if said and said != content:
            problems.append(f"{path.name} is {'named' if by_name else 'marked'} as chapter {said} but holds chapter {content}; "
                            f"give the {said} notebook instead, or rename this one {content}.ipynb.")
            continue
        if not said:
            notes.append(f"{path.name} says no chapter in its name; its cells are chapter {content}'s")
        if content in found:
            problems.append(f"{found[content][0].name} and {path.name} are both chapter {content}; "
                            "give only the one with your final answers.")
            continue
        found[content] = (path, nb)
    if problems:
        raise UserError(" ".join(problems))
    return found, notes


# ----------------------------------------------------------------------------------------
# The plan: which code goes where


def plan(root: Path, files: list[tuple[Path, bool]], package: str) -> Plan:
    import nbformat

    from .chapters import source_notebook
    from .preflight import Preflight, build

    from .selfcheck import _bundle

    config = course_config(root)
    sources, releases, skipped = {}, {}, []
    for c in list_chapters(root):  # a chapter still being written (no release yet, or a broken source) is left out
        try:
            if c.student_notebook.is_file() and c.slug in _bundle():
                sources[c.slug] = source_notebook(c, config)
                releases[c.slug] = nbformat.read(c.student_notebook, as_version=4)
                continue
        except UserError:
            pass
        skipped.append(c.slug)
    chapters = [c for c in list_chapters(root) if c.slug in sources]
    given, notes = identify(files, releases)
    result = Plan(package, notes=notes)
    if skipped:
        result.notes.append(f"chapter(s) {', '.join(skipped)} are not released yet, so the package leaves them out "
                            "(the commands use buildgpt's code for them)")
    modules = {str(c.metadata["export"]) for nb in sources.values() for c in nb.cells if c.metadata.get("export")}

    for chapter in chapters:
        slug = chapter.slug
        release = releases[slug]
        result.imports[slug] = [code for c in release.cells if c.cell_type == "code"
                                and not nbgrader_meta(c).get("solution") and not nbgrader_meta(c).get("grade")
                                and not (c.metadata.get("buildgpt") or {}).get("generated")
                                for code, _ in _import_lines(c.source)]
        answers, student_nb = {}, None
        if slug in given:
            path, nb = given[slug]
            result.notebooks[slug] = path.name
            pre = build(Preflight("", path.name, slug), nb, release, sources[slug])
            if pre.fatal:
                raise UserError(f"{path.name}: {pre.fatal}.")
            result.notes += [f"{path.name}: {n}" for n in pre.notes  # demo and test cells do not go into a package
                             if "code cell(s) of the release" not in n and "test cell" not in n]
            answers = {nbgrader_meta(c)["grade_id"]: c.source for c in pre.submission.cells
                       if nbgrader_meta(c).get("solution")}
            student_nb = nb
        stubs = {nbgrader_meta(c)["grade_id"]: c.source for c in answer_cells(release)}
        for cell in sources[slug].cells:
            if cell.cell_type != "code":
                continue
            module = cell.metadata.get("export")
            gid = nbgrader_meta(cell).get("grade_id") if nbgrader_meta(cell).get("solution") else None
            code = strip_markers(cell.source, SOLUTION_MARKERS).strip("\n")
            if gid:
                ex = Exercise(slug, gid, str(module) if module else None, code, _defined(ast.parse(code)),
                              result.notebooks.get(slug, ""))
                _read_answer(ex, answers.get(gid), stubs.get(gid, ""), modules, student_nb)
                result.exercises[gid] = ex
            if module:
                result.parts.setdefault(str(module), []).append((slug, gid, code))
    return result


def _read_answer(ex: Exercise, source: str | None, stub: str, modules: set[str], nb) -> None:
    from .preflight import _norm

    if source is None:
        ex.why = f"no notebook of chapter {ex.chapter} was given" if not ex.notebook else "its answer cell is missing"
        return
    if _norm(source) == _norm(stub) or not source.strip():
        ex.why = "not done yet: the answer is still the stub"
        return
    code = clean_cell(source)
    tree = _parse(code)
    if tree is None:
        try:
            ast.parse(code)
        except SyntaxError as exc:
            ex.why = f"{ex.where}: the answer has a syntax error on line {exc.lineno} ({exc.msg}); fix it in the notebook."
        return
    bound = _top_names(tree)
    missing = [n for n in ex.names if n not in bound]
    if missing:
        others = [n for n in _defined(tree) if n not in ex.names]
        if others:
            ex.why = (f"{ex.where}: the answer defines `{others[0]}` instead of `{missing[0]}`; "
                      f"keep the name the exercise asks for, the package and the tests look it up by name.")
        else:
            ex.why = f"{ex.where}: the answer defines no `{missing[0]}`; write it under that name."
        return
    used = reference_use(tree, ex.names, modules)
    if used:
        ex.why = (f"{ex.where}: the answer imports the reference {used} instead of implementing it; "
                  "write your own code in the cell.")
        return
    ex.student = code
    ex.notebook_names = _notebook_globals(nb, source) if nb is not None else set()


def _notebook_globals(nb, answer: str) -> set[str]:
    """Names the student's notebook binds outside this answer cell (demo variables, their own cells)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source != answer:
            tree = _parse(clean_cell(cell.source))
            if tree is not None:
                names |= {n for n in _top_names(tree)}
    return names


# ----------------------------------------------------------------------------------------
# Writing the package


def module_text(plan_: Plan, module: str, reference: set[str]) -> tuple[str, list[tuple[int, int, str]]]:
    """The module's code; and (first line, last line, grade id) of every exercise's part in it."""
    modules = set(plan_.parts)
    parts = plan_.parts[module]
    chosen = []
    for slug, gid, code in parts:
        ex = plan_.exercises.get(gid) if gid else None
        if ex is not None and not (gid in reference or ex.student is None):
            chosen.append((slug, gid, ex.student, True))
        else:
            chosen.append((slug, gid, code, False))
    bound = set()
    for _, _, code, _ in chosen:
        tree = _parse(code)
        if tree is not None:
            bound |= _top_names(tree)
    origin = ", ".join(dict.fromkeys(f"{plan_.notebooks.get(slug, 'solutions/' + slug + '.md')}" for slug, *_ in parts))
    text = [HEADER.format(origin=origin)]
    spans = []
    line = 2
    for slug, gid, code, student in chosen:
        code = rewrite_imports(code, modules)
        if student:
            code = _with_imports(code, plan_, slug, module, bound)
        label = (f"# {gid}: your answer" if student else f"# {gid}: the course's reference answer") if gid else ""
        block = (label + "\n" if label else "") + code
        text.append("\n" + block + "\n")
        n = block.count("\n") + 1
        if gid:
            spans.append((line + 1, line + n, gid))
        line += n + 2
        text.append("\n")
    return "".join(text).rstrip("\n") + "\n", spans


def _with_imports(code: str, plan_: Plan, slug: str, module: str, bound: set[str]) -> str:
    """The student's cell, with the imports its notebook gave it that the module lacks (the notebook
    imported torch at the top; the module must too)."""
    tree = _parse(code)
    if tree is None:
        return code
    offered = {}
    chapters = list(plan_.imports)
    for ch in chapters[: chapters.index(slug) + 1][::-1]:
        for line in plan_.imports[ch]:
            t = _parse(line)
            if t is not None:
                for name in _top_names(t):
                    offered.setdefault(name, line)
    add = []
    for name in _free_names(tree):
        if name in bound:
            continue
        if name in offered:
            add.append(rewrite_imports(offered[name], set(plan_.parts)))
            continue
        for other, parts in plan_.parts.items():  # a name another exported module of the course defines
            if other != module and any(_parse(c) is not None and name in _defined(_parse(c)) for _, _, c in parts):
                add.append(f"from .{other} import {name}")
                break
    add = list(dict.fromkeys(add))
    return ("\n".join(add) + "\n" + code) if add else code


def write_package(plan_: Plan, folder: Path, reference: set[str]) -> dict[str, list[tuple[int, int, str]]]:
    folder.mkdir(parents=True)
    spans = {}
    for module in plan_.parts:
        text, spans[module] = module_text(plan_, module, reference)
        (folder / f"{module}.py").write_text(text, encoding="utf-8")
    yours = [g for g, ex in plan_.exercises.items() if g not in reference and ex.student is not None]
    info = {"yours": len(yours), "total": len(plan_.exercises), "reference": [g for g in plan_.exercises if g not in yours],
            "reference_summary": reference_summary(plan_, set(plan_.exercises) - set(yours))}
    (folder / "__init__.py").write_text(
        f'"""{plan_.package}: a GPT built from your own answers to "Build a Large Language Model From Scratch".\n\n'
        "Made by `python -m autograder assemble`; REPORT.md says which code is yours. Run it with the course's\n"
        f'commands, e.g. `python -m buildgpt train --impl {plan_.package} ...`."""\n\n'
        f"{MARK} = {json.dumps(info, indent=1)}\n", encoding="utf-8")
    return spans


# ----------------------------------------------------------------------------------------
# Running the tests against the package, in a fresh process


def _chapter_job(plan_: Plan, slug: str, reference: set[str]) -> dict:
    """What the worker needs to build chapter `slug`'s namespace from the package alone."""
    names = []
    for module, parts in plan_.parts.items():
        for ch, gid, code in parts:
            ex = plan_.exercises.get(gid) if gid else None
            use = ex.student if ex is not None and ex.student is not None and gid not in reference else code
            tree = _parse(use)
            if ch == slug and tree is not None:
                names.append([module, sorted(_top_names(tree)), gid])
    local = []
    for gid, ex in plan_.exercises.items():
        if ex.chapter == slug and ex.module is None:
            use = ex.student if ex.student is not None and gid not in reference else ex.reference
            local.append([gid, rewrite_imports(use, set(plan_.parts), f"{plan_.package}.")])
    imports = [rewrite_imports(line, set(plan_.parts), f"{plan_.package}.") for line in plan_.imports[slug]]
    return {"chapter": slug, "imports": imports, "names": names, "local": local}


WORKER = r"""
import json, sys, traceback
job = json.loads(sys.stdin.read())
import torch
torch.set_num_threads(1)
from buildgpt.impl import load_impl
from autograder.selfcheck import run_self_check
out = {"import_error": None, "results": {}, "local_errors": {}}
try:
    impl = load_impl(job["package_dir"], quiet=True)
    ns = {}
    for line in job["imports"]:
        try:
            exec(line, ns)
        except Exception:
            pass
    for module, names, gid in job["names"]:
        mod = getattr(impl, module)
        for name in names:
            if hasattr(mod, name):
                ns[name] = getattr(mod, name)
except BaseException as exc:
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [(f.filename, f.lineno) for f in tb] + ([(exc.filename, exc.lineno)] if isinstance(exc, SyntaxError) else [])
    cause = exc.__cause__ or exc
    out["import_error"] = {"type": type(cause).__name__, "message": str(cause).split("\n")[0][:300], "frames": frames}
    print(json.dumps(out)); sys.exit(0)
for gid, code in job["local"]:
    try:
        exec(compile(code, f"<{gid}>", "exec"), ns)
    except BaseException as exc:
        out["local_errors"][gid] = f"{type(exc).__name__}: {exc}"[:300]
report = run_self_check(job["chapter"], ns)
for r in report.results:
    out["results"][r.exercise] = r.message if not r.passed else ""
print(json.dumps(out))
"""


def run_tests(plan_: Plan, package_dir: Path, spans: dict, reference: set[str], chapters: list[str],
              timeout: float, log=None) -> dict[str, str]:
    """Every exercise of `chapters`: '' if its tests pass against the package, else why not."""
    failures = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(find_root())] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               OMP_NUM_THREADS="1")
    for slug in chapters:
        job = _chapter_job(plan_, slug, reference)
        job["package_dir"] = str(package_dir)
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", WORKER], input=json.dumps(job), capture_output=True,
                                  text=True, timeout=timeout, env=env, cwd=str(package_dir.parent))
        except subprocess.TimeoutExpired:
            for gid, ex in plan_.exercises.items():
                if ex.chapter == slug:
                    failures[gid] = f"the tests of chapter {slug} did not finish within {timeout:g} s (an endless loop?)"
            continue
        try:
            out = json.loads(done.stdout.strip().splitlines()[-1])
            if os.environ.get("ASSEMBLE_TIMING") and log:
                log(f"  chapter {slug}: {time.perf_counter() - started:.1f} s")
        except (ValueError, IndexError):
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            for gid, ex in plan_.exercises.items():
                if ex.chapter == slug:
                    failures[gid] = f"the tests of chapter {slug} crashed the Python process ({tail[:200]})"
            continue
        if out["import_error"]:
            gid = _blame(out["import_error"], package_dir, spans)
            err = out["import_error"]
            if gid:
                failures[gid] = _sentence(plan_.exercises[gid], err["type"], err["message"], at_import=True)
            else:  # nothing to blame on an answer: the course's own code failed, which is a bug to report
                raise UserError(f"the assembled package failed to import ({err['type']}: {err['message']}); "
                                "this is a bug of the course, please report it.")
            continue
        for gid, message in out["local_errors"].items():
            failures[gid] = _sentence(plan_.exercises[gid], *message.split(": ", 1), at_import=True)
        for gid, message in out["results"].items():
            if message and gid not in failures:
                kind, _, text = message.partition(": ")
                failures[gid] = _sentence(plan_.exercises[gid], kind, text) if kind == "NameError" else message
    return failures


MAX_ROUNDS = 8


def _module_deps(folder: Path) -> dict[str, set[str]]:
    """module -> every package module it imports, directly or not (from the written package's text)."""
    direct = {}
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        direct[path.stem] = set(re.findall(r"^\s*from \.(\w+) import", text, re.M)) | {
            n.strip().split(" as ")[0] for names in re.findall(r"^\s*from \. import (.+)$", text, re.M) for n in names.split(",")}
    closure = {}
    for module in direct:
        seen, todo = set(), [module]
        while todo:
            for dep in direct.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        closure[module] = seen | {module}
    return closure


def _may_use(ex: Exercise, earlier: Exercise, deps: dict[str, set[str]]) -> bool:
    """Whether exercise `ex` (its code or its tests) may run the code of `earlier`."""
    if earlier.module is None:
        return ex.chapter == earlier.chapter and ex.module is None
    if ex.module is None:
        return True  # a chapter's own code runs with everything the chapter imports
    return earlier.module in deps.get(ex.module, {ex.module})


def _blame(err: dict, package_dir: Path, spans: dict) -> str:
    for filename, lineno in reversed(err["frames"]):
        path = Path(filename or "")
        if path.parent == package_dir and path.stem in spans:
            for first, last, gid in spans[path.stem]:
                if first <= (lineno or 0) <= last:
                    return gid
    return ""


def _sentence(ex: Exercise, kind: str, message: str, at_import: bool = False) -> str:
    m = re.match(r"name '(\w+)' is not defined", message or "")
    if kind == "NameError" and m:
        name = m.group(1)
        if name in ex.notebook_names:
            return (f"{ex.where}: the answer uses `{name}`, which another cell of the notebook defines, so it only "
                    f"works inside the notebook; pass it as an argument or define it in the answer cell.")
        return f"{ex.where}: the answer uses `{name}`, which is defined nowhere outside the notebook; define or import it in the answer cell."
    what = "running the answer outside the notebook" if at_import else "its tests"
    return f"{ex.where}: {what} raised {kind}: {message}"[:400]


# ----------------------------------------------------------------------------------------
# The command


def assemble(paths: list[Path], out: Path, fill_missing: bool = False, timeout: float = 600, log=print) -> int:
    root = find_root()
    package = out.name
    if not package.isidentifier() or package == "buildgpt":
        raise UserError(f"--out {out}: the folder name is the package's import name, so it must be a Python name "
                        f"other than buildgpt (e.g. --out mygpt).")
    if out.exists() and not (out / "REPORT.md").is_file():
        raise UserError(f"--out {out} already exists and is not a package made by assemble; choose another folder, "
                        "nothing was written.")
    files = gather(paths)
    p = plan(root, files, package)
    for slug, name in p.notebooks.items():
        log(f"read {name} as chapter {slug}")
    for note in p.notes:
        log(f"note: {note}")

    static = {g: ex.why for g, ex in p.exercises.items() if ex.why}
    chapters = list(dict.fromkeys(ex.chapter for ex in p.exercises.values()))
    first_failures: dict[str, str] = dict(static)
    reference = set(static)
    order = list(p.exercises)
    with tempfile.TemporaryDirectory(prefix="assemble-") as tmp:
        to_test = [c for c in chapters if any(ex.chapter == c and g not in reference for g, ex in p.exercises.items())]
        for round_ in range(MAX_ROUNDS):
            folder = Path(tmp) / f"round{round_}" / package
            spans = write_package(p, folder, reference)
            if not to_test:
                break
            log(f"testing {'your answers' if round_ == 0 else 'again, with the reference for the failing ones'}: "
                f"chapter{'s' if len(to_test) > 1 else ''} {', '.join(c[:2] for c in to_test)} ...")
            failures = run_tests(p, folder, spans, reference, to_test, timeout, log)
            new = {g: why for g, why in failures.items() if g not in reference}
            for g, why in new.items():
                first_failures.setdefault(g, why)
            if not new:
                break
            # An answer that fails may only fail because an earlier one it builds on is wrong (a wrong
            # attention breaks the GPT): those get another try once the earlier ones are the reference.
            deps = _module_deps(folder)
            suspects = {e for e in new if round_ < MAX_ROUNDS - 2 and any(
                order.index(g) < order.index(e) and _may_use(p.exercises[e], p.exercises[g], deps) for g in new)}
            roots = set(new) - suspects
            reference |= roots
            to_test = [c for c in chapters if c >= min(p.exercises[g].chapter for g in roots)
                       and any(ex.chapter == c and g not in reference for g, ex in p.exercises.items())]
        else:
            raise UserError(f"the package still fails its tests after {MAX_ROUNDS} rounds; this is a bug of the course, "
                            "please report it.")
        # exercises that failed at first only because of another answer now pass with the reference under them
        recovered = [g for g in first_failures if g not in reference]
        table = _table(p, reference, first_failures)
        if reference and not fill_missing:
            log(table)
            if recovered:
                log(f"({', '.join(recovered)} failed too, only because of the exercises above: with the reference in "
                    f"their place {'it passes' if len(recovered) == 1 else 'they pass'}.)")
            absent = [c[:2] for c in chapters if c not in p.notebooks]
            need = sum(1 for g in reference if p.exercises[g].chapter in p.notebooks)
            log(f"No package was written: {need} exercise(s) above need work"
                + (f", and no notebook was given for chapter(s) {', '.join(absent)}" if absent else "")
                + ". Fix them, or add --fill-missing to take the course's reference answer for those only.")
            return 1
        yours = len(p.exercises) - len(reference)
        report = _report(p, reference, first_failures, recovered, table)
        (folder / "REPORT.md").write_text(report, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, out, ignore=shutil.ignore_patterns("__pycache__"))
    if reference:
        log(table)
    summary = f"using your code for {yours} of {len(p.exercises)} exercises"
    if reference:
        summary += "; reference for " + reference_summary(p, reference)
    log(f"wrote {out}/ ({summary}); the tests of every chapter you gave pass against it.")
    log(f"train it: python -m buildgpt train --impl {out} --data datasets/tinyshakespeare.txt --out runs/mine")
    return 0


def reference_summary(p: Plan, reference: set[str]) -> str:
    """'ex-03-sdpa; chapters 00, 01, 02 (no notebook given)': the reference code a package uses, short."""
    absent = [slug for slug in dict.fromkeys(ex.chapter for ex in p.exercises.values()) if slug not in p.notebooks]
    ids = [g for g in p.exercises if g in reference and p.exercises[g].chapter not in absent]
    parts = ([", ".join(ids)] if ids else []) + (
        [f"chapter{'s' if len(absent) > 1 else ''} {', '.join(c[:2] for c in absent)} (no notebook given)"] if absent else [])
    return "; ".join(parts)


def _rows(p: Plan, reference: set[str], why: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = [(p.exercises[g].chapter, g, why.get(g, "")) for g in p.exercises
            if g in reference and p.exercises[g].chapter in p.notebooks]
    for slug in dict.fromkeys(ex.chapter for ex in p.exercises.values()):
        if slug not in p.notebooks:
            n = sum(1 for ex in p.exercises.values() if ex.chapter == slug)
            rows.append((slug, f"(all {n})", "no notebook of this chapter was given"))
    return rows


def _table(p: Plan, reference: set[str], why: dict[str, str]) -> str:
    rows = _rows(p, reference, why)
    if not rows:
        return ""
    w1 = max(len("chapter"), *(len(r[0]) for r in rows))
    w2 = max(len("exercise"), *(len(r[1]) for r in rows))
    lines = [f"{'chapter':<{w1}}  {'exercise':<{w2}}  why", f"{'-' * w1}  {'-' * w2}  ---"]
    lines += [f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _report(p: Plan, reference: set[str], why: dict, recovered: list[str], table: str) -> str:
    yours = len(p.exercises) - len(reference)
    lines = [f"# {p.package}: your own GPT", "",
             f"Assembled by `python -m autograder assemble` from {len(p.notebooks)} notebook(s). "
             f"It uses **your code for {yours} of {len(p.exercises)} exercises**; the tests of every chapter given, "
             "hidden ones included, pass against this package.", ""]
    if reference:
        lines += ["## The course's reference answers it uses instead of yours", "",
                  "| chapter | exercise | why |", "| --- | --- | --- |"]
        for chapter_, gid, text in _rows(p, reference, why):
            lines.append(f"| {chapter_} | {gid} | {text.replace('|', '/')} |")
        lines.append("")
    if recovered:
        lines += [f"These failed at first only because of the ones above, and are yours: {', '.join(recovered)}.", ""]
    lines += ["## Notebooks", ""] + [f"- {slug}: {name}" for slug, name in p.notebooks.items()]
    if p.notes:
        lines += ["", "## Repairs and notes", ""] + [f"- {n}" for n in p.notes]
    lines += ["", "## Use it", "", "```bash",
              f"python -m buildgpt train --impl {p.package} --data datasets/tinyshakespeare.txt --out runs/mine",
              f"python -m buildgpt generate --impl {p.package} --ckpt runs/mine --prompt ROMEO:", "```", ""]
    return "\n".join(lines)
