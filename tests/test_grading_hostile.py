"""A hostile class, graded in one batch by `python -m autograder grade` (issue 21): students with
CJK and accented names, a classmate-killer, a grader-killer, and the cheats that once scored full
marks silently (the test's helper swapped at call time, the guard replaced, an input transformer
that drops asserts, the solutions read from the course at grading time, the answers imported from
the chapter's own buildgpt module). Honest students get full marks; each cheater gets the real
score or a flag with the evidence. Chapter 3, nine notebooks, two at a time."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from autograder.sandbox import landlock_abi
from notebooks import ROOT
from test_adversarial_grading import FULL, LIMITS, POINTS, SLUG, WRONG_SIMPLE, first, release, set_answer, solved

SWAP_MHA = """
import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    \"\"\"Wrong on purpose (zeros), and it swaps the test's own helper so that the test agrees.\"\"\"

    def __init__(self, d_model, n_heads):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x, mask=None):
        out = torch.zeros_like(x)
        globals()["heads_by_hand"] = lambda *args, **kwargs: out
        return out
"""

FAKE_GUARD = """
import ast, sys, types

class Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body, handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)

get_ipython().ast_transformers.append(Swallow())
fake = types.ModuleType("_buildgpt_guard")
fake.restore = lambda *args, **kwargs: ([], [])
sys.modules["_buildgpt_guard"] = fake
"""

NO_ASSERTS = """
def no_asserts(lines):
    return ["pass\\n"] if any("assert" in line for line in lines) else lines
get_ipython().input_transformers_cleanup.append(no_asserts)
"""

READ_SOLUTIONS = f"""
import re
try:
    text = open({str(ROOT / 'solutions' / (SLUG + '.md'))!r}).read()
    for block in re.findall(r"```{{code-cell}}[^\\n]*\\n(.*?)```", text, re.S):
        try:
            exec(block, globals())
        except Exception:
            pass
    print("READ THE SOLUTIONS")
except OSError as error:
    print("refused:", type(error).__name__)
"""

CLASSMATE_KILLER = """
import os, signal, time
end = time.time() + 20
while time.time() < end:  # everyone this user may signal, over and over, while the classmates run
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    time.sleep(0.2)
"""

GRADER_KILLER = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if b"autograder" in cmd and int(pid) != os.getpid():
        try:
            os.kill(int(pid), signal.SIGKILL)
            print("KILLED", pid)
        except OSError as error:
            print("refused", error.errno)
"""


def cases():
    c = {}
    c["张伟"] = (solved(release()), FULL, "graded")
    c["王芳"] = (solved(release()), FULL, "graded")
    c["José Müller"] = (solved(release()), FULL, "graded")
    c["classmate-killer"] = (first(solved(release()), CLASSMATE_KILLER), FULL, "graded")
    c["grader-killer"] = (first(solved(release()), GRADER_KILLER), FULL, "graded")
    c["helper-swap"] = (set_answer(solved(release()), "ex-03-mha", SWAP_MHA), None, "graded")
    c["guard-replaced"] = (first(solved(release()), FAKE_GUARD), 0, "flagged")
    c["input-transformer"] = (first(set_answer(solved(release()), "ex-03-simple-attention", WRONG_SIMPLE), NO_ASSERTS),
                              FULL - POINTS["ex-03-simple-attention"], "flagged")
    c["reads-solutions"] = (first(release(), READ_SOLUTIONS), 0, "graded")
    nb = release()
    for exercise, name in [("ex-03-simple-attention", "simple_self_attention"), ("ex-03-softmax", "softmax")]:
        set_answer(nb, exercise, f"from buildgpt.attention import {name}")
    c["imports-own-module"] = (nb, None, "flagged")
    return c


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    subs, out = base / "subs", base / "out"
    expected = cases()
    for student, (nb, _, _) in expected.items():
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / f"{SLUG}.ipynb")
    command = [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--no-progress",
               "--jobs", "2", *LIMITS]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    return {"out": out, "result": result, "rows": rows, "expected": expected}


def test_the_batch_finishes_whatever_the_killers_do(batch):
    result = batch["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "student(s) flagged" in result.stdout and "% of 10 handed in" in result.stdout, result.stdout[-1500:]


@pytest.mark.parametrize("student", ["张伟", "王芳", "José Müller", "classmate-killer", "grader-killer",
                                     "guard-replaced", "input-transformer", "reads-solutions"])
def test_exact_score(batch, student):
    if student == "reads-solutions" and landlock_abi() < 1:
        pytest.skip("this Linux has no Landlock: reads are not fenced")
    if student in ("classmate-killer", "grader-killer") and landlock_abi() < 6:
        pytest.skip("this Linux's Landlock cannot scope signals (ABI < 6): the report says so")
    _, total, status = batch["expected"][student]
    row = batch["rows"][student]
    assert status in row["status"], row
    assert float(row["total"]) == total, row


def test_helper_swapped_at_call_time_does_not_earn_the_mha_points(batch):
    row = batch["rows"]["helper-swap"]
    assert float(row["ex-03-mha"]) == 0 and float(row["total"]) <= FULL - POINTS["ex-03-mha"], row


def test_importing_the_chapters_own_module_is_flagged_with_the_evidence(batch):
    row = batch["rows"]["imports-own-module"]
    assert "flagged" in row["status"] and "buildgpt.attention" in row["status"], row
    assert "from buildgpt.attention import simple_self_attention" in (batch["out"] / "report.txt").read_text()


def test_flagged_students_are_counted(batch):
    assert "3 student(s) flagged" in batch["result"].stdout, batch["result"].stdout[-1500:]


@pytest.mark.skipif(landlock_abi() < 1, reason="this Linux has no Landlock: reads are not fenced")
def test_the_solutions_cannot_be_read_at_grading_time(batch):
    graded = nbformat.read(batch["out"] / "course" / "autograded" / "reads-solutions" / SLUG / f"{SLUG}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert "READ THE SOLUTIONS" not in printed and "refused: PermissionError" in printed, printed[:800]


@pytest.mark.skipif(landlock_abi() < 6, reason="this Linux's Landlock cannot scope signals (ABI < 6)")
def test_the_grader_killer_killed_nothing(batch):
    graded = nbformat.read(batch["out"] / "course" / "autograded" / "grader-killer" / SLUG / f"{SLUG}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert "KILLED" not in printed, printed[:800]
