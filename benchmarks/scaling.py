"""Scaling-law sweep for chapter 10, on character-level TinyShakespeare (90/10 split), one CPU thread.

    nice python benchmarks/scaling.py sweep [--out benchmarks/results/scaling-sweep.json]
    nice python benchmarks/scaling.py check [--minutes 10] [--out benchmarks/results/scaling-check.json]

sweep: SHAPES x STEPS small GPTs, each a separate run whose cosine schedule ends at its own budget
    (as Hoffmann et al. 2022 do; reading losses off the middle of one long run would overstate the
    loss at small budgets). Context 64, batch 16, lr 3e-3 -> 3e-4, 5% warmup, no dropout, seed 0.
    Records for each run N (non-embedding parameters, as Kaplan et al. 2020 count them), D (training
    tokens), C = 6ND, the validation loss (mean of 40 fixed batches) and the training time.
check: fits L(N, D) = E + A / N^alpha + B / D^beta to the sweep (buildgpt.scaling, chapter 10);
    for each of the sweep's shapes, turns --minutes of one CPU thread into steps with that shape's
    measured CPU time per step, predicts the loss after those steps with the fit (counting repeated
    data by its effective size, Muennighoff et al. 2023), picks the shape
    with the lowest prediction, trains it for those steps, and reports predicted vs measured loss.
Every run prints the load average; timings depend on it, losses do not (CPU runs are deterministic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.data import load_corpus, prepare_corpus  # noqa: E402
from buildgpt.model import GPT, GPTConfig  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402
from buildgpt.trainer import TrainConfig, estimate_loss, train  # noqa: E402

CORPUS = ROOT / "runs" / "corpus-shakespeare-char"  # runs/ is git-ignored
RESULTS = ROOT / "datasets"  # shipped: chapter 10 reads them through buildgpt.resources.dataset_path
CONTEXT, BATCH = 64, 16
# (n_layers, d_model): from about 2 thousand to 0.5 million non-embedding parameters
SHAPES = [(1, 16), (2, 32), (2, 64), (3, 96), (4, 128)]
STEPS = [150, 300, 600, 1200]
EVAL_BATCHES = 40


def corpus():
    if not (CORPUS / "meta.json").is_file():
        prepare_corpus(dataset_path("tinyshakespeare.txt"), CORPUS, "char")
    return load_corpus(CORPUS)


def shape_config(n_layers: int, d_model: int, vocab_size: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, context_length=CONTEXT, d_model=d_model,
                     n_heads=max(1, d_model // 32), n_layers=n_layers, dropout=0.0)


def non_embedding_params(model: GPT) -> int:
    """Parameters outside the token and position embeddings (and a tied or separate output head)."""
    skip = {id(p) for name, p in model.named_parameters() if "emb" in name or name.startswith("lm_head")}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def train_one(n_layers: int, d_model: int, steps: int, train_ids, val_ids, vocab_size: int) -> dict:
    torch.manual_seed(0)
    model = GPT(shape_config(n_layers, d_model, vocab_size))
    settings = TrainConfig(max_steps=steps, batch_size=BATCH, lr=3e-3, min_lr=3e-4, warmup_steps=max(1, steps // 20),
                           weight_decay=0.1, beta2=0.99, grad_clip=1.0, eval_interval=steps, eval_iters=1, seed=0)
    start = time.process_time()
    history = train(model, train_ids, val_ids, settings, progress=False)
    cpu_s = time.process_time() - start
    n = non_embedding_params(model)
    d = steps * BATCH * CONTEXT
    val = estimate_loss(model, val_ids, 32, EVAL_BATCHES, "cpu", seed=123)
    return {"n_layers": n_layers, "d_model": d_model, "steps": steps, "N": n,
            "N_total": sum(p.numel() for p in model.parameters()), "D": d, "C": 6 * n * d,
            "val_loss": round(val, 4), "train_loss_last": round(history["loss"][-1], 4),
            "cpu_s": round(cpu_s, 2), "wall_s": round(history["wall_s"], 2), "load": load_average()}


def run_sweep(args) -> dict:
    train_ids, val_ids, meta = corpus()
    runs = []
    started = time.perf_counter()
    print(f"sweep: {len(SHAPES)} shapes x {len(STEPS)} budgets, one thread; load {load_average()}", flush=True)
    for n_layers, d_model in SHAPES:
        for steps in STEPS:
            r = train_one(n_layers, d_model, steps, train_ids, val_ids, meta["vocab_size"])
            runs.append(r)
            print(f"L={n_layers} d={d_model:3d} N={r['N']:>7,} steps={steps:5d} D={r['D']:>9,} C={r['C']:.2e} "
                  f"val {r['val_loss']:.4f}  {r['cpu_s']:.1f} CPU-s  load {r['load']}", flush=True)
    return {"runs": runs, "context_length": CONTEXT, "batch_size": BATCH, "eval_batches": EVAL_BATCHES,
            "vocab_size": meta["vocab_size"], "total_wall_s": round(time.perf_counter() - started, 1),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load_end": load_average()}


def run_check(args) -> dict:
    from buildgpt.scaling import effective_tokens, fit_scaling_law, optimal_allocation, predict_loss

    sweep = json.loads(Path(args.sweep).read_text(encoding="utf-8"))
    runs = sweep["runs"]
    fit = fit_scaling_law([r["N"] for r in runs], [r["D"] for r in runs], [r["val_loss"] for r in runs])
    # What --minutes of this CPU buys each shape: its own measured CPU time per step (from its longest
    # sweep run), not 6N FLOPs per token, because small models spend much of a step on fixed costs.
    budget_s = args.minutes * 60
    train_ids, val_ids, meta = corpus()
    unique = meta["train_tokens"]  # long runs repeat the data: predict with its effective size (Muennighoff et al.)
    candidates = []
    for n_layers, d_model in SHAPES:
        longest = max((r for r in runs if (r["n_layers"], r["d_model"]) == (n_layers, d_model)), key=lambda r: r["steps"])
        s_per_step = longest["cpu_s"] / longest["steps"]
        steps = int(budget_s / s_per_step)
        d = steps * BATCH * CONTEXT
        candidates.append({"n_layers": n_layers, "d_model": d_model, "N": longest["N"], "s_per_step": round(s_per_step, 4),
                           "steps": steps, "D": d, "C": 6 * longest["N"] * d,
                           "D_eff": round(effective_tokens(d, unique)),
                           "predicted": round(predict_loss(fit, longest["N"], effective_tokens(d, unique)), 4)})
    best = min(candidates, key=lambda c: c["predicted"])
    flops_per_s = best["C"] / budget_s
    n_opt, d_opt = optimal_allocation(fit, best["C"])
    print(f"fit: {fit}", flush=True)
    print(f"{args.minutes} CPU-minutes; at the chosen shape's speed that is C = {best['C']:.3g} FLOPs, for which the fit's "
          f"optimum is N = {n_opt:,.0f}, D = {d_opt:,.0f} ({d_opt / n_opt:.1f} tokens per parameter)", flush=True)
    for c in candidates:
        print(f"  L={c['n_layers']} d={c['d_model']:3d} N={c['N']:>9,} {c['s_per_step'] * 1000:6.1f} ms/step "
              f"steps={c['steps']:6d} predicted {c['predicted']:.4f}" + ("   <- chosen" if c is best else ""), flush=True)
    measured = train_one(best["n_layers"], best["d_model"], best["steps"], train_ids, val_ids, meta["vocab_size"])
    print(f"chosen L={best['n_layers']} d={best['d_model']}: predicted {best['predicted']:.4f}, measured "
          f"{measured['val_loss']:.4f} after {measured['cpu_s']:.0f} CPU-s ({measured['wall_s']:.0f} s wall), load {load_average()}",
          flush=True)
    return {"fit": fit, "minutes": args.minutes, "unique_tokens": unique, "budget_flops": best["C"], "flops_per_cpu_s": flops_per_s,
            "optimum": {"N": n_opt, "D": d_opt}, "candidates": candidates, "chosen": best, "measured": measured,
            "load_end": load_average(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["sweep", "check"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sweep", type=Path, default=RESULTS / "scaling-sweep.json", help="the sweep's results (check)")
    parser.add_argument("--minutes", type=float, default=10.0, help="the budget of the check, in CPU minutes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = run_sweep(args) if args.what == "sweep" else run_check(args)
    out = args.out or RESULTS / f"scaling-{args.what}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
