"""GPT.forward's causal path, measured: the attention told is_causal=True (what GPT does by default since
chapter 4's FastAttention) against chapter 3's MultiHeadAttention reading the boolean causal mask.

    python benchmarks/causal.py [--threads 1] [--repeats 9] [--out benchmarks/results/causal.json]

For each shape, one model with one set of weights is switched between the two paths (only the class of
its attention layers changes: buildgpt.model.use_causal_attention and back), and the two take turns,
call by call, so that both see the same load. Reported per shape: the median milliseconds of a forward
pass without gradients (generation, evaluation) and of a forward and backward pass (training), for the
boolean mask and for is_causal=True, their ratio, and the largest |logits difference| between the paths.
Only the attention differs: the LayerNorms and GELUs are the taught ones in both. The load average is
printed before and after (the machine may be shared; timings depend on it).
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

from buildgpt.attention import MultiHeadAttention  # noqa: E402
from buildgpt.model import GPT, FastAttention, GPTConfig, use_causal_attention  # noqa: E402
from buildgpt.threads import set_threads  # noqa: E402

# (name, model shape, batch): chapter 5's default model at its context, nanoGPT's CPU shape, and a
# narrow model at GPT-2's context of 1,024, where attention's T x T work dominates.
SHAPES = [
    ("char-book, T 128, batch 8", dict(vocab_size=65, context_length=128, d_model=128, n_heads=4, n_layers=4), 8),
    ("nanoGPT CPU, T 64, batch 12", dict(vocab_size=65, context_length=64, d_model=128, n_heads=4, n_layers=4), 12),
    ("4 layers, C 128, T 1024, batch 2", dict(vocab_size=65, context_length=1024, d_model=128, n_heads=4, n_layers=4), 2),
]


def taught_attention(model: GPT) -> GPT:
    """The same model with chapter 3's MultiHeadAttention (the boolean mask, read by the fused kernel)."""
    for module in model.modules():
        if type(module) is FastAttention:
            module.__class__ = MultiHeadAttention
    return model


def measure(name: str, config: GPTConfig, batch: int, repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = GPT(config).to(device)
    ids = torch.randint(0, config.vocab_size, (batch, config.context_length + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()

    paths = {"mask": taught_attention, "is_causal": use_causal_attention}
    model.eval()
    with torch.no_grad():
        logits = {path: switch(model)(x).float() for path, switch in paths.items()}
    gap = (logits["mask"] - logits["is_causal"]).abs().max().item()
    model.train()  # dropout is 0: train mode changes nothing but the autograd bookkeeping
    times: dict[str, list[float]] = {f"{kind}_{path}": [] for kind in ("forward", "train") for path in paths}
    for kind, fn in (("forward", forward), ("train", train_step)):
        for path, switch in paths.items():  # warm-up, once each
            switch(model)
            fn()
        for _ in range(repeats):
            for path, switch in paths.items():
                switch(model)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[f"{kind}_{path}"].append(1000 * (time.perf_counter() - started))
    row = {"shape": name, "batch": batch, **config.to_dict(), "max_logits_difference": gap}
    for key, values in times.items():
        row[f"{key}_ms"] = statistics.median(values)
    for kind in ("forward", "train"):
        row[f"{kind}_speedup"] = row[f"{kind}_mask_ms"] / row[f"{kind}_is_causal_ms"]
    print(f"{name}: forward {row['forward_mask_ms']:.1f} ms with the mask, {row['forward_is_causal_ms']:.1f} ms "
          f"is_causal ({row['forward_speedup']:.2f}x); forward+backward {row['train_mask_ms']:.1f} ms vs "
          f"{row['train_is_causal_ms']:.1f} ms ({row['train_speedup']:.2f}x); largest |logits difference| "
          f"{gap:.1e}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: buildgpt.threads' rule)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per path and kind (median reported)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; run on the CPU (the default)")
    threads = set_threads(args.threads)
    device = torch.device(args.device)
    before = load_average()
    print(f"PyTorch {torch.__version__}, {device}, {threads} thread(s), load average before: {before}", flush=True)
    rows = [measure(name, GPTConfig(**shape), batch, args.repeats, device) for name, shape, batch in SHAPES]
    after = load_average()
    print(f"load average after: {after}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "device": str(device), "threads": threads,
                                        "repeats": args.repeats, "load_average_before": before,
                                        "load_average_after": after, "rows": rows}, indent=2) + "\n")
        shown = args.out.resolve()
        print(f"wrote {shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown.name}")


if __name__ == "__main__":
    main()
