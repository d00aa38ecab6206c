"""The warm pool (issue 22): one process per job slot imports the worker's and the kernel's
libraries once and forks a worker per notebook, which forks the kernel. Two small notebooks run
one after the other on the same slot, through the grader's own `_run_worker`, exactly as in a
batch: the second gets a fresh kernel (another process, another folder, none of the first's
names or files, its own random numbers), and a pool killed from outside is started again."""

from __future__ import annotations

import json
import os
import signal

import nbformat
import pytest

from autograder import sandbox
from autograder.sandbox import Job, Limits

LIMITS = Limits(cell_timeout=60, budget=240)

FIRST = [
    "import os, random\nsecret_of_first = 'alice'\nopen('mine.txt', 'w').write('alice')\n"
    "print('PID', os.getpid(), 'PPID', os.getppid(), 'HOME', os.environ['HOME'], 'RANDOM', random.random())",
]
SECOND = [
    "import os, random\n"
    "print('PID', os.getpid(), 'PPID', os.getppid(), 'HOME', os.environ['HOME'], 'RANDOM', random.random())\n"
    "print('NAME', 'secret_of_first' in globals(), 'FILE', os.path.exists('mine.txt'))",
]


def notebook(path, cells):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path


def said(record) -> dict:
    text = "".join(o.get("text", "") for c in record["notebook"]["cells"] for o in c.get("outputs", []))
    words = text.split()
    return {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i].isupper()}


@pytest.fixture()
def pools():
    yield sandbox._pools
    sandbox.close_pools()


def test_each_notebook_gets_a_fresh_kernel_forked_from_the_slots_pool(tmp_path, pools):
    one = Job("ada/a.ipynb", notebook(tmp_path / "a.ipynb", FIRST), tmp_path / "a.json", [])
    two = Job("bob/b.ipynb", notebook(tmp_path / "b.ipynb", SECOND), tmp_path / "b.json", [])
    first = sandbox._run_worker(one, LIMITS, 0)
    pool_pid = pools[0].proc.pid
    second = sandbox._run_worker(two, LIMITS, 0)
    assert pools[0].proc.pid == pool_pid, "the second notebook must reuse the slot's pool, not start another"
    assert not first["stopped"] and not second["stopped"], (first["stopped"], second["stopped"])
    a, b = said(first), said(second)
    if a["PID"] == b["PID"] == "2":  # each kernel in a PID namespace of its own: pid 2, its init's child
        assert a["PPID"] == b["PPID"] == "1", (a, b)
    else:  # where Linux refuses the kernel a namespace (the report says so)
        assert a["PID"] != b["PID"] and a["PPID"] != b["PPID"], "each notebook has its own worker and kernel"
        assert pool_pid not in (int(a["PPID"]), int(b["PPID"])), "the kernel is the worker's child, never the pool's"
    assert a["HOME"] != b["HOME"], "each kernel has its own folder"
    assert (b["NAME"], b["FILE"]) == ("False", "False"), "nothing of the first notebook reaches the second"
    assert a["RANDOM"] != b["RANDOM"], "kernels forked from one pool must not share their random numbers"
    assert not (tmp_path / "a.log").exists(), "the worker's log is removed once its record is read"


def test_a_pool_killed_from_outside_is_started_again(tmp_path, pools):
    one = Job("ada/a.ipynb", notebook(tmp_path / "a.ipynb", FIRST), tmp_path / "a.json", [])
    assert not sandbox._run_worker(one, LIMITS, 0)["stopped"]
    os.killpg(pools[0].proc.pid, signal.SIGKILL)
    pools[0].proc.wait()
    two = Job("bob/b.ipynb", notebook(tmp_path / "b.ipynb", SECOND), tmp_path / "b.json", [])
    record = sandbox._run_worker(two, LIMITS, 0)
    assert not record["stopped"] and said(record)["NAME"] == "False", record.get("stopped")
    assert json.loads((tmp_path / "b.json").read_text())["notebook"], "the record is written where the grader reads it"
