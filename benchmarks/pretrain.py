"""Pretraining benchmarks for chapter 5, on character-level TinyShakespeare (90/10 split).

    python benchmarks/pretrain.py nanogpt [--threads 2] [--out benchmarks/results/pretrain-nanogpt.json]
    python benchmarks/pretrain.py nanogpt --from-run runs/shakespeare-char   # the shipped model's run
    python benchmarks/pretrain.py preset [--minutes 10] [--out benchmarks/results/pretrain-preset.json]
    python benchmarks/pretrain.py speed [--threads 1] [--repeats 30] [--out benchmarks/results/pretrain-speed.json]

nanogpt: nanoGPT's published CPU run (README, "I only have a macbook"): n_layer=4, n_head=4,
    n_embd=128, block_size=64, batch_size=12, 2,000 iterations, lr 1e-3, 100 warmup steps, cosine
    decay to 1e-4 at 2,000, beta2 0.99, weight decay 0.1, dropout 0, clip 1.0, no biases.
    Reports the validation loss at iteration 2,000 (mean of 200 batches, and of 20 batches as
    nanoGPT's eval_iters=20), ms per iteration and tokens per second. Target: val <= 1.89.
preset: the book's default ("char-book" in buildgpt.model.PRESETS, with the training settings of
    BOOK_TRAINING) for at most --minutes of wall time; reports every evaluation with its wall time,
    and the first time the validation loss reached 1.65. Target: <= 1.65 within 10 minutes.
speed: one training step (forward, loss, backward, clipping at 1.0, AdamW) at nanoGPT's CPU
    configuration with biases (n_layer 4, n_head 4, n_embd 128, block 64, batch 12), for buildgpt as
    its trainer runs it (fused kernels, foreach AdamW), for buildgpt with the chapters' own code, and
    for transformers' GPT2LMHeadModel with torch.optim.AdamW, taking turns step by step so that all
    see the same load: ms per step (median), tokens per second, and the ratio to transformers. Then
    the fused attention kernel given the boolean causal mask against is_causal=True (chapter 4).
Each run prints the load average (the machine may be shared; timings depend on it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.data import load_corpus, prepare_corpus  # noqa: E402
from buildgpt.model import GPT, GPTConfig  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402
from buildgpt.trainer import TrainConfig, estimate_loss, train  # noqa: E402

CORPUS = ROOT / "runs" / "corpus-shakespeare-char"  # runs/ is git-ignored
NANOGPT_MODEL = dict(context_length=64, d_model=128, n_heads=4, n_layers=4, dropout=0.0, bias=False)
NANOGPT_TRAINING = dict(max_steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                        weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20)
# The book's default run: what `python -m buildgpt train --preset char-book` uses (buildgpt/commands/train.py).
from buildgpt.commands.train import BOOK_TRAINING  # noqa: E402




def corpus():
    if not (CORPUS / "meta.json").is_file():
        prepare_corpus(dataset_path("tinyshakespeare.txt"), CORPUS, "char")
    return load_corpus(CORPUS)


def run_nanogpt(args) -> dict:
    train_ids, val_ids, meta = corpus()
    if args.from_run:  # a run of the train command with these settings (e.g. the shipped checkpoint's)
        from buildgpt.checkpoint import load_checkpoint, load_model

        model, _ = load_model(args.from_run)
        history = load_checkpoint(args.from_run)["extra"]["history"]
        shape = {k: v for k, v in model.config.to_dict().items() if k in NANOGPT_MODEL and k != "bias"}
        settings = {k: history["config"][k] for k in NANOGPT_TRAINING}
        expected = {k: v for k, v in NANOGPT_MODEL.items() if k != "bias"}
        if shape != expected or settings != NANOGPT_TRAINING:
            raise SystemExit(f"{args.from_run} was not trained with nanoGPT's CPU settings: {shape}, {settings}")
        wall = history["wall_s"]
        print(f"from the run {args.from_run} (biases: {model.config.bias}); load average now {load_average()}")
    else:
        torch.manual_seed(1337)
        model = GPT(GPTConfig(vocab_size=meta["vocab_size"], **NANOGPT_MODEL))
        print(f"nanoGPT CPU configuration, {sum(p.numel() for p in model.parameters()):,} parameters; load average {load_average()}")
        started = time.perf_counter()
        history = train(model, train_ids, val_ids, TrainConfig(**NANOGPT_TRAINING, seed=1337), progress=not args.quiet)
        wall = time.perf_counter() - started
    val200 = estimate_loss(model, val_ids, 12, 200, "cpu", seed=7)
    result = {"benchmark": "nanogpt-cpu", "from_run": str(args.from_run) if args.from_run else None,
              "bias": model.config.bias, "val_loss_2000_eval20": history["evals"][-1]["val_loss"],
              "val_loss_2000_eval200": val200, "train_loss_2000_eval20": history["evals"][-1]["train_loss"],
              "ms_per_iter": 1000 * history["elapsed_s"] / len(history["step"]),
              "tokens_per_s": history["tokens"] / history["elapsed_s"],
              "wall_s": wall, "threads": torch.get_num_threads(), "load_average_after": load_average(),
              "evals": history["evals"], "torch": torch.__version__}
    print(f"val loss at 2,000: {val200:.4f} (200 batches), {result['val_loss_2000_eval20']:.4f} (20 batches, as nanoGPT); "
          f"{result['ms_per_iter']:.1f} ms/iter, {result['tokens_per_s']:,.0f} tokens/s, {wall:.0f} s wall; "
          f"load average {result['load_average_after']}; target val <= 1.89: {'met' if val200 <= 1.89 else 'NOT met'}")
    return result


def run_preset(args) -> dict:
    from buildgpt.commands.train import BOOK_PRESET

    train_ids, val_ids, meta = corpus()
    torch.manual_seed(1337)
    model = GPT(GPTConfig.from_preset(BOOK_PRESET, vocab_size=meta["vocab_size"]))
    config = TrainConfig(**{**BOOK_TRAINING, "time_limit_s": 60 * args.minutes, "compile": args.compile})
    print(f"preset {BOOK_PRESET} {model.config}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{config}; load average {load_average()}", flush=True)
    history = train(model, train_ids, val_ids, config, progress=not args.quiet,
                    on_eval=lambda h: print(json.dumps(h["evals"][-1]), "load", load_average(), flush=True))
    reached = next((e for e in history["evals"] if e["val_loss"] <= 1.65), None)
    result = {"benchmark": "book-preset", "preset": BOOK_PRESET, "model": model.config.to_dict(),
              "training": {k: v for k, v in vars(config).items()}, "evals": history["evals"],
              "final_val_loss": history["evals"][-1]["val_loss"], "steps": len(history["step"]),
              "ms_per_step": history["ms_per_step"], "tokens_per_s": history["tokens_per_s"],
              "reached_1.65_at": reached, "stopped": history["stopped"], "load_average_after": load_average(),
              "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"final val loss {result['final_val_loss']:.4f} after {result['steps']} steps, "
          f"{history['evals'][-1]['wall_s']:.0f} s wall, {result['ms_per_step']:.0f} ms/step, "
          f"{result['tokens_per_s']:,.0f} tokens/s; val <= 1.65 "
          + (f"at step {reached['step']} after {reached['wall_s']:.0f} s" if reached else f"NOT reached in {args.minutes} min")
          + f"; load average {result['load_average_after']}")
    return result


NANOGPT_SPEED = dict(n_layer=4, n_head=4, n_embd=128, block=64, batch=12)  # nanoGPT's CPU configuration


def _buildgpt_step(vocab: int, x, y, fast: bool):
    """One training step as buildgpt's trainer takes it (fast=True: use_fast_kernels and AdamW(foreach=True))."""
    from buildgpt import optim
    from buildgpt.losses import cross_entropy
    from buildgpt.model import use_fast_kernels

    s = NANOGPT_SPEED
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, context_length=s["block"], d_model=s["n_embd"], n_heads=s["n_head"],
                          n_layers=s["n_layer"], bias=True, dropout=0.0)).train()
    if fast:
        use_fast_kernels(model)
    opt = optim.AdamW(optim.param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99), foreach=fast)

    def step():
        loss = cross_entropy(model(x), y)
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, sum(p.numel() for p in model.parameters())


def _transformers_step(vocab: int, x, y):
    """The same step with Hugging Face's GPT2LMHeadModel of the same shape, torch.optim.AdamW and clipping."""
    import transformers

    transformers.logging.set_verbosity_error()
    s = NANOGPT_SPEED
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"],
                                     n_positions=s["block"], vocab_size=vocab, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(config).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    def step():
        logits = model(input_ids=x).logits  # the targets are y, as for buildgpt (no shift inside)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step, sum(p.numel() for p in model.parameters())


def _causal_rows(args) -> list[dict]:
    """F.scaled_dot_product_attention with the boolean causal mask against is_causal=True, forward + backward."""
    rows = []
    for B, h, T, d in [(12, 4, 64, 32), (8, 8, 256, 32), (2, 12, 1024, 64)]:
        q, k, v = (torch.randn(B, h, T, d, requires_grad=True) for _ in range(3))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        runs = {"mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward(),
                "is_causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()}
        times = {name: [] for name in runs}
        for fn in runs.values():
            fn()
        for _ in range(max(3, args.repeats // (1 if T <= 256 else 4))):
            for name, fn in runs.items():
                started = time.perf_counter()
                fn()
                times[name].append(1000 * (time.perf_counter() - started))
        row = {"shape": [B, h, T, d], **{f"{n}_ms": statistics.median(t) for n, t in times.items()}}
        row["speedup"] = row["mask_ms"] / row["is_causal_ms"]
        print(f"  attention (B, h, T, d) = {(B, h, T, d)}: bool mask {row['mask_ms']:.2f} ms, is_causal "
              f"{row['is_causal_ms']:.2f} ms ({row['speedup']:.2f}x)", flush=True)
        rows.append(row)
    return rows


def run_speed(args) -> dict:
    """buildgpt's training step and transformers' GPT2LMHeadModel's, side by side, taking turns."""
    import transformers

    train_ids, _, meta = corpus()
    s, vocab = NANOGPT_SPEED, meta["vocab_size"]
    x, y = get_batch_for_speed(train_ids, s["batch"], s["block"])
    steps = {}
    steps["buildgpt"], n_ours = _buildgpt_step(vocab, x, y, fast=True)
    steps["buildgpt, taught kernels"], _ = _buildgpt_step(vocab, x, y, fast=False)
    steps["transformers"], n_theirs = _transformers_step(vocab, x, y)
    print(f"nanoGPT's CPU configuration with biases: {s}; parameters: buildgpt {n_ours:,}, transformers "
          f"{n_theirs:,}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} thread(s); load average {load_average()}",
          flush=True)
    for step in steps.values():  # warm-up: first-call allocations, thread pools
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    load_before = load_average()
    for _ in range(args.repeats):  # interleaved, so that all three see the same load
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(1000 * (time.perf_counter() - started))
    tokens = s["batch"] * s["block"]
    rows = {}
    for name, t in times.items():
        ms = statistics.median(t)
        rows[name] = {"ms_per_step": ms, "tokens_per_s": tokens / ms * 1000}
    reference = rows["transformers"]["ms_per_step"]
    for name, row in rows.items():
        row["ratio_to_transformers"] = row["ms_per_step"] / reference
        print(f"  {name:26s} {row['ms_per_step']:7.1f} ms/step  {row['tokens_per_s']:8,.0f} tokens/s  "
              f"{row['ratio_to_transformers']:.2f}x transformers' time", flush=True)
    load_after = load_average()
    print(f"medians of {args.repeats} interleaved steps; load average before {load_before}, after {load_after}")
    causal = _causal_rows(args)
    return {"benchmark": "speed", "config": s, "threads": torch.get_num_threads(), "rows": rows,
            "attention_mask_vs_is_causal": causal, "repeats": args.repeats, "load_average_before": load_before,
            "load_average_after": load_after, "torch": torch.__version__, "transformers": transformers.__version__}


def get_batch_for_speed(train_ids, batch: int, block: int):
    from buildgpt.data import get_batch

    return get_batch(train_ids, batch, block, generator=torch.Generator().manual_seed(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["nanogpt", "preset", "speed"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the machine's cores)")
    parser.add_argument("--minutes", type=float, default=10.0, help="preset: wall-time budget (default 10)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (preset, speed)")
    parser.add_argument("--repeats", type=int, default=30, help="speed: timed steps of each (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--from-run", type=Path, help="nanogpt: measure a finished train-command run (its checkpoint "
                        "and log) instead of training again")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"nanogpt": run_nanogpt, "preset": run_preset, "speed": run_speed}[args.which](args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
