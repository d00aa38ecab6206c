"""`python -m autograder compare RUN`: does your GPT learn like the course's?

RUN is a run folder written by `python -m buildgpt train --impl mygpt ...` (its ckpt.pt holds the
model's shape, the training settings, the corpus and the validation loss at every evaluation).
The command trains the course's reference code (buildgpt, the chapters' own kernels, as --impl
runs) with exactly those settings and seed, or reads a reference run given with --reference, and
prints both validation losses at every evaluation. With correct answers they agree to float
rounding, bit for bit when the two runs use the same number of CPU threads.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from .errors import UserError


def _history(run: Path) -> tuple[dict, dict]:
    from buildgpt.checkpoint import load_checkpoint

    try:
        state = load_checkpoint(run)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"{exc}") from None
    history = (state.get("extra") or {}).get("history")
    if not history or not history.get("evals"):
        raise UserError(f"{run} holds no training history; give a run folder written by `python -m buildgpt train`.")
    return state, history


def reference_history(state: dict, history: dict, threads: int | None = None, progress: bool = True) -> dict:
    """Train buildgpt's reference code with the run's own settings; return its history."""
    import torch

    from buildgpt.data import load_corpus
    from buildgpt.model import GPT, GPTConfig
    from buildgpt.trainer import TrainConfig, train

    known = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in history["config"].items() if k in known}
    if settings.get("time_limit_s"):
        raise UserError("that run stopped on --time-limit, whose schedule depends on the machine's speed, so no "
                        "other run can repeat it; train with a fixed --max-steps and compare that run.")
    settings["fast"] = False  # the chapters' own code, as a student's package runs it
    settings["max_steps"] = history["evals"][-1]["step"] if history.get("stopped") == "interrupted" else settings["max_steps"]
    corpus = Path(((state.get("extra") or {}).get("run") or {}).get("corpus", ""))
    if not (corpus / "meta.json").is_file():
        raise UserError(f"the run's tokenized corpus ({corpus.name or 'unknown'}) is gone, so the reference cannot "
                        "train on the same data; train your run again, or pass --reference with a reference run.")
    if threads:
        torch.set_num_threads(threads)
    train_ids, val_ids, _ = load_corpus(corpus)
    config = TrainConfig(**settings)
    torch.manual_seed(config.seed)
    model = GPT(GPTConfig(**state["config"]))
    return train(model, train_ids, val_ids, config, out_dir=None, device="cpu", progress=progress)


def compare(run: Path, reference: Path | None = None, tolerance: float = 0.02, threads: int | None = None,
            log=print) -> int:
    state, mine = _history(run)
    if reference is not None:
        ref_state, theirs = _history(reference)
        if ref_state["config"] != state["config"]:
            raise UserError(f"{run} and {reference} are models of different shapes; compare runs of the same preset.")
    else:
        steps = mine["evals"][-1]["step"]
        log(f"training the course's reference code with the same settings for {steps} steps, to compare ...")
        theirs = reference_history(state, mine, threads)
    ref_by_step = {e["step"]: e["val_loss"] for e in theirs["evals"]}
    rows = [(e["step"], e["val_loss"], ref_by_step[e["step"]]) for e in mine["evals"] if e["step"] in ref_by_step]
    if not rows:
        raise UserError("the two runs never evaluated at the same step; use the same --eval-interval.")
    log(f"{'step':>6}  {'your val loss':>14}  {'reference':>10}  {'difference':>10}")
    for step, a, b in rows:
        log(f"{step:>6}  {a:>14.4f}  {b:>10.4f}  {a - b:>+10.4f}")
    step, a, b = rows[-1]
    if all(x == y for _, x, y in rows):
        log(f"Your GPT learns exactly like the reference: the same validation loss at every evaluation, bit for bit "
            f"({a:.4f} at step {step}).")
        return 0
    if not math.isfinite(a):
        log(f"Your GPT's validation loss is {a} at step {step}: the training diverged. REPORT.md in your package says "
            "which code is yours; look first at the loss, the optimizer and the clipping.")
        return 1
    worst = max(abs(x - y) for _, x, y in rows)
    if worst <= tolerance:
        log(f"Your GPT matches the reference: {a:.4f} against {b:.4f} at step {step}, never more than {worst:.4f} "
            f"apart (<= {tolerance:g}): the same computation, rounded a little differently.")
        return 0
    log(f"Your GPT's validation loss is {a:.4f} at step {step} against the reference's {b:.4f} ({a - b:+.4f}; the "
        f"runs differ by up to {worst:.4f}, more than {tolerance:g}). Some answer of yours passes the tests but trains "
        "differently; REPORT.md in your package lists which code is yours.")
    return 1
