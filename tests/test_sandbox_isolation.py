"""The sandbox on its own (no grading batch, one kernel, seconds): what a student's code can no
longer reach, and the cheats on the guard that now fail or are flagged. Each case is a cell of one
small notebook run by `python -m autograder.sandbox run`, exactly as the grader runs a submission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from autograder.sandbox import landlock_abi
from notebooks import ROOT

CELLS = [
    ("setup", "import os, signal\nimport matplotlib.pyplot\n%matplotlib inline\nprint('ready')"),
    ("reads", """
        for path in [{solutions!r}, {tests!r}, {out!r}]:
            try:
                open(path, 'rb').read(10)
                print('READ', path)
            except OSError as error:
                print('refused', type(error).__name__)
        """),
    ("imports", "import torch, buildgpt.resources, buildgpt.attention\nprint('imported')"),
    ("signals", """
        for pid in (os.getppid(), 1):
            try:
                os.kill(pid, 0)
                print('SIGNALLED', pid)
            except OSError as error:
                print('signal refused', error.errno)
        try:
            os.kill(-1, signal.SIGKILL)  # everything this user may signal: only its own tree may die
        except OSError:
            pass
        print('still here')
        """),
    ("honest-answer", "def double(x):\n    return 2 * x"),
    ("test-honest", "def reference(x):\n    return x + x\nassert double(3) == reference(3)\nhelper_for_later = 7"),
    ("uses-test-helper", "print('later', helper_for_later, reference(2))"),
    ("swap-answer", """
        def triple(x):
            globals()['reference'] = lambda x: 99  # swap the test's own helper while the test runs
            return 99
        """),
    ("test-swap", "def reference(x):\n    return 3 * x\nassert triple(2) == reference(2)"),
    ("transformer", """
        def no_asserts(lines):
            return ['pass\\n'] if any('assert' in line for line in lines) else lines
        get_ipython().input_transformers_cleanup.append(no_asserts)
        """),
    ("event", "get_ipython().events.register('pre_run_cell', lambda *args: None)"),
    ("test-transformer", "assert 1 == 2, 'this test fails'"),
    ("fake-guard", """
        import ast, sys, types
        class Swallow(ast.NodeTransformer):
            def visit_Module(self, node):
                handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])
                node.body = [ast.Try(body=node.body, handlers=[handler], orelse=[], finalbody=[])]
                return ast.fix_missing_locations(node)
        get_ipython().ast_transformers.append(Swallow())
        fake = types.ModuleType('_buildgpt_guard')
        fake.restore = lambda *args, **kwargs: ([], [], '0' * 64)
        sys.modules['_buildgpt_guard'] = fake
        """),
    ("test-fake-guard", "assert 1 == 2, 'this test fails too'"),
]
TESTS = [name for name, _ in CELLS if name.startswith("test-")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("isolation")
    out = base / "grading-out"
    out.mkdir()
    (out / "grades.csv").write_text("student,total\n")
    values = {"solutions": str(ROOT / "solutions" / "03-attention.md"),
              "tests": str(ROOT / "autograder" / "chapter_tests.json"), "out": str(out / "grades.csv")}
    cells = []
    for name, source in CELLS:
        cell = nbformat.v4.new_code_cell(textwrap.dedent(source).format(**values) if name == "reads" else textwrap.dedent(source))
        cell.id = name
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, base / "nb.ipynb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "autograder.sandbox", "run", str(base / "nb.ipynb"), str(out / "record.json"),
               "--tests", ",".join(TESTS), "--limits", json.dumps({"cell_timeout": 60, "budget": 240})]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    record = json.loads((out / "record.json").read_text())
    ran = {c["index"]: c for c in record["cells"]}
    by_name = {}
    for index, cell in enumerate(record["notebook"]["cells"]):
        text = "".join(o.get("text", "") + o.get("evalue", "") for o in cell["outputs"])
        by_name[cell["id"]] = (ran[index].get("status"), text)
    return {"record": record, "cells": by_name, "result": result}


def test_the_notebook_runs_to_the_end(run):
    assert not run["record"]["stopped"], run["record"]["stopped"]
    assert run["cells"]["setup"] == ("ok", "ready\n"), run["result"].stderr[-2000:]
    assert "imported" in run["cells"]["imports"][1]


@pytest.mark.skipif(landlock_abi() < 1, reason="this Linux has no Landlock: reads are not fenced")
def test_student_code_cannot_read_solutions_tests_or_the_grading_folder(run):
    text = run["cells"]["reads"][1]
    assert "READ" not in text and text.count("refused PermissionError") == 3, text


@pytest.mark.skipif(landlock_abi() < 6, reason="this Linux's Landlock cannot scope signals (ABI < 6)")
def test_student_code_cannot_signal_the_grader_or_other_processes(run):
    status, text = run["cells"]["signals"]
    assert "SIGNALLED" not in text and text.count("signal refused") == 2 and "still here" in text, text


def test_an_honest_test_passes_and_its_definitions_stay(run):
    assert run["cells"]["test-honest"][0] == "ok", run["cells"]["test-honest"]
    assert run["cells"]["uses-test-helper"] == ("ok", "later 7 4\n")


def test_swapping_the_tests_helper_at_call_time_does_not_pass(run):
    status, text = run["cells"]["test-swap"]
    assert status == "error", text


def test_an_input_transformer_that_drops_asserts_is_removed_and_flagged(run):
    status, text = run["cells"]["test-transformer"]
    assert status == "error" and "this test fails" in text, text
    assert "IPython input transformers" in run["record"]["tampered"], run["record"]["tampered"]


def test_a_foreign_event_callback_is_flagged_and_matplotlibs_own_is_not(run):
    tampered = run["record"]["tampered"]
    assert "IPython pre_run_cell callbacks" in tampered and "IPython post_execute callbacks" not in tampered, tampered


def test_a_replaced_guard_fails_the_test_and_is_flagged(run):
    status, text = run["cells"]["test-fake-guard"]
    assert status == "error", text
    assert any("guard was replaced" in t for t in run["record"]["tampered"]), run["record"]["tampered"]
