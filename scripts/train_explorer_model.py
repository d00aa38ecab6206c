"""Train the small character-level GPT whose attention chapter 3's explorer shows.

    python scripts/train_explorer_model.py            # writes datasets/explorer-model.pt

It trains buildgpt.viz.ExplorerGPT (pre-LayerNorm blocks on buildgpt.attention.MultiHeadAttention)
on the first 90% of TinyShakespeare for a fixed number of steps, measures the loss on fixed samples
of the training and validation text, and saves the weights in float16 with the configuration, the
character vocabulary and how it was made. It is a stand-in: chapter 5's `train` command replaces it.
A few minutes on a laptop CPU; on a busy CPU, `--threads 1` is often faster than the default.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.basics import count_parameters, set_seed  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402
from buildgpt.viz import EXPLORER_MODEL, ExplorerGPT  # noqa: E402

CONFIG = dict(context=64, d_model=96, n_layers=3, n_heads=4)


def batches(data: torch.Tensor, context: int, batch_size: int, gen: torch.Generator):
    """Endless random (x, y) batches of shape (batch_size, context); y is x shifted by one."""
    while True:
        starts = torch.randint(len(data) - context - 1, (batch_size,), generator=gen)
        x = torch.stack([data[s : s + context] for s in starts.tolist()])
        y = torch.stack([data[s + 1 : s + context + 1] for s in starts.tolist()])
        yield x, y


@torch.no_grad()
def estimate_loss(model: ExplorerGPT, data: torch.Tensor, context: int, n_batches: int = 20) -> float:
    """Mean cross-entropy over n_batches fixed batches of 64 (the same ones every time)."""
    model.eval()
    sample = batches(data, context, 64, torch.Generator().manual_seed(12345))
    total = 0.0
    for _ in range(n_batches):
        x, y = next(sample)
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    model.train()
    return total / n_batches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / EXPLORER_MODEL)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    text = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    vocab = "".join(sorted(set(text)))
    stoi = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(data))  # the same split as chapter 0: the last 10% is for validation
    train_data, val_data = data[:split], data[split:]

    set_seed(args.seed)
    config = dict(vocab_size=len(vocab), **CONFIG)
    model = ExplorerGPT(**config)
    for block in model.blocks:
        block.attn.use_fused = True  # same numbers as the manual path, faster
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    warmup = 50
    print(f"ExplorerGPT {config}: {count_parameters(model):,} parameters; {args.steps} steps of "
          f"{args.batch_size} x {CONFIG['context']} characters", flush=True)

    stream = batches(train_data, CONFIG["context"], args.batch_size, torch.Generator().manual_seed(args.seed))
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        # linear warm-up, then cosine decay to a tenth of the peak learning rate
        progress = max(0.0, (step - warmup) / max(1, args.steps - warmup))
        lr = args.lr * min(1.0, step / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(stream)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.perf_counter() - start:5.0f} s", flush=True)
    seconds = time.perf_counter() - start

    for block in model.blocks:
        block.attn.use_fused = False
    train_loss = estimate_loss(model, train_data, CONFIG["context"])
    val_loss = estimate_loss(model, val_data, CONFIG["context"])
    print(f"final loss: train {train_loss:.3f}, validation {val_loss:.3f}; trained in {seconds:.0f} s")

    command = "python scripts/train_explorer_model.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    checkpoint = {
        "config": config,
        "vocab": vocab,
        "state_dict": {name: t.detach().half() for name, t in model.state_dict().items()},
        "meta": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "train_loss": round(train_loss, 4), "val_loss": round(val_loss, 4), "seconds": round(seconds, 1),
                 "command": command, "torch": str(torch.__version__),
                 "made_by": "scripts/train_explorer_model.py (a stand-in until chapter 5's train command)"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
