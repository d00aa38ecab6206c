"""Chapter 9 on real processes: `torchrun ... -m buildgpt train --strategy ddp|fsdp` with two CPU
processes and gloo against one process, Ctrl-C and --resume, and the grading sandbox running the
chapter's two-process exercises."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.chapters import SOLUTION_MARKERS, nbgrader_meta, strip_markers
from notebooks import CHAPTERS, ROOT, exercises

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
TINY = ["--preset", "char-tiny", "--context-length", "32", "--max-steps", "30", "--batch-size", "8",
        "--eval-interval", "10", "--eval-iters", "2", "--warmup-steps", "5", "--threads", "1", "--no-progress"]
TOLERANCE = 1e-4  # float32: the ranks' all-reduce adds in another order than one process


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _train(args: list[str], cwd: Path, two: bool) -> subprocess.CompletedProcess:
    command = (TORCHRUN if two else [sys.executable]) + ["-m", "buildgpt", "train", *args]
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _losses(run: Path) -> list[float]:
    return json.loads((run / "metrics.json").read_text())["loss"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("strategies")
    shutil.copy(ROOT / "datasets" / "tinyshakespeare.txt", work / "corpus.txt")
    done = {"work": work}
    for name, extra, two in [("one", [], False), ("ddp", ["--strategy", "ddp"], True), ("fsdp", ["--strategy", "fsdp"], True)]:
        done[name] = _train(["--data", "corpus.txt", "--out", name, *TINY, *extra], work, two)
        assert done[name].returncode == 0, f"{name}: {done[name].stderr[-3000:]}"
    return done


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_follow_one_process_loss_curve(runs, strategy):
    one, two = _losses(runs["work"] / "one"), _losses(runs["work"] / strategy)
    assert len(one) == len(two) == 30
    worst = max(abs(a - b) for a, b in zip(one, two))
    assert worst < TOLERANCE, f"{strategy} on 2 processes drifts {worst:.2g} from one process (allowed {TOLERANCE})"
    evals = json.loads((runs["work"] / strategy / "metrics.json").read_text())["evals"]
    assert [e["step"] for e in evals] == [10, 20, 30]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_only_rank_zero_prints_and_writes(runs, strategy):
    out = runs[strategy].stdout
    assert out.count("training a ") == 1 and out.count("step 30: train loss") == 2, out  # the eval line and the summary
    assert "peak memory per rank" in out
    folder = runs["work"] / strategy
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt.pt", "corpus", "metrics.json"]


def test_checkpoint_of_fsdp_is_a_full_one(runs):
    import torch

    from buildgpt.checkpoint import load_checkpoint, load_model

    full = load_checkpoint(runs["work"] / "fsdp")
    plain = load_checkpoint(runs["work"] / "one")
    assert full["model"].keys() == plain["model"].keys()
    for name, tensor in plain["model"].items():
        assert type(full["model"][name]) is torch.Tensor and full["model"][name].shape == tensor.shape, name
        assert (full["model"][name] - tensor).abs().max().item() < 1e-3, name
    moments = [s["exp_avg"] for s in full["optimizer"]["state"].values()]
    assert moments and all(type(m) is torch.Tensor for m in moments)
    model, _ = load_model(runs["work"] / "fsdp")  # generate reads it as it is
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for k, t in plain["model"].items() if k != "lm_head.weight")


def test_ctrl_c_stops_every_rank_and_resume_continues_with_either_strategy(runs):
    work = runs["work"]
    log = (work / "interrupted.log").open("w")
    proc = subprocess.Popen(TORCHRUN + ["-m", "buildgpt", "train", "--data", "corpus.txt", "--out", "cut", *TINY,
                                        "--strategy", "fsdp"], cwd=work, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while "step 10:" not in (work / "interrupted.log").read_text() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group gets it
    proc.wait(timeout=120)
    printed = (work / "interrupted.log").read_text()
    assert "stopped by Ctrl-C at step" in printed, printed[-3000:]
    assert "--strategy fsdp --out cut --resume" in printed
    time.sleep(1)
    survivors = subprocess.run(["pgrep", "-f", "buildgpt train --data corpus.txt --out cut"], capture_output=True, text=True)
    assert not survivors.stdout.strip(), "a rank kept running after Ctrl-C"
    state = json.loads((work / "cut" / "metrics.json").read_text())
    assert state["stopped"] == "interrupted" and 10 <= state["step"][-1] < 30
    shutil.copytree(work / "cut", work / "cut-ddp")
    uninterrupted = _losses(work / "fsdp")
    for folder, strategy in [("cut", "fsdp"), ("cut-ddp", "ddp")]:
        done = _train(["--out", folder, "--resume", "--strategy", strategy, "--threads", "1", "--no-progress"], work, True)
        assert done.returncode == 0, done.stderr[-3000:]
        resumed = _losses(work / folder)
        assert len(resumed) == 30
        worst = max(abs(a - b) for a, b in zip(resumed, uninterrupted))
        assert worst < TOLERANCE, f"resumed with {strategy}: the loss curve drifts {worst:.2g} from the uninterrupted run"


def test_several_processes_without_a_strategy_is_one_sentence(monkeypatch):
    from buildgpt.distributed import parallel_from_environment

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="pass --strategy ddp or --strategy fsdp"):
        parallel_from_environment(None, "cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert parallel_from_environment("fsdp", "cpu") is None  # one process: chapter 5's run


def test_grading_sandbox_runs_the_two_process_exercises(tmp_path):
    """The grader's sandbox (memory, process and file limits, Landlock) lets a notebook start two
    processes that talk over loopback: chapter 9's exercises 3 and 4 pass there."""
    from autograder.sandbox import Job, Limits, landlock_abi, run_many

    chapter = next(c for c in CHAPTERS if c.slug == "09-distributed")
    answers = dict(exercises(chapter))
    nb = nbformat.read(chapter.student_notebook, as_version=4)
    wanted = {"ex-09-ddp", "test-09-ddp", "ex-09-zero", "test-09-zero"}
    kept = []
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in wanted:
            if grade_id in answers:
                cell.source = strip_markers(answers[grade_id], SOLUTION_MARKERS)
            kept.append(cell)
    nb.cells = kept
    path = tmp_path / "09.ipynb"
    nbformat.write(nb, path)
    tests = [c.id for c in kept if nbgrader_meta(c).get("grade_id", "").startswith("test-")]
    record = run_many([Job("student", path, tmp_path / "record.json", tests)], Limits(budget=900), workers=1)["student"]
    assert not record["stopped"], record["stopped"]
    graded = record["notebook"]["cells"]
    errors = [o for c in graded if c["cell_type"] == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    assert [c["status"] for c in record["cells"]] == ["ok"] * 4
    if landlock_abi():
        assert not any("Landlock" in n for n in record["notes"]), record["notes"]
