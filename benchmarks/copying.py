"""Can a model copy from its context? The repeat test of chapter 7, for the course's character models.

    python benchmarks/copying.py                                   # the shipped character models
    python benchmarks/copying.py --ckpt "longer base=runs/base/ckpt.pt" --out benchmarks/results/copying.log

Each model reads 20 random strings of 30 lowercase letters, each followed by itself, and the script
prints the mean loss per character on the first copy and on the repetition
(buildgpt.instruct.repeat_loss). A model that copies from its context (an induction head, Olsson et
al. 2022) has a far lower loss on the repetition; chapter 7's fine-tuned models need that skill for
every task family but arithmetic. For each model it also prints, per head of the first two layers,
the mean attention weight on the previous character of a Shakespeare passage: a sharp
previous-character head is the first half of an induction head. And it prints how alike the
position vectors of neighbouring positions are (the mean cosine similarity of rows p and p + 1 of
pos_emb, and of rows p and p + 10): a table that tells neighbours apart from far positions is what
a previous-character head is built on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.checkpoint import load_model  # noqa: E402
from buildgpt.instruct import repeat_loss  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402
from buildgpt.threads import THREADS_HELP, set_threads  # noqa: E402

SHIPPED = ["shakespeare-char.pt", "instruct-base.pt", "instruct-sft.pt", "instruct-dpo.pt"]


@torch.no_grad()
def previous_char_attention(model, tokenizer, layers: int = 2) -> list[list[float]]:
    """Per layer (the first few) and head: mean attention weight on the previous character of a passage."""
    text = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")[5000:5000 + model.config.context_length]
    ids = torch.tensor([tokenizer.encode(text)])
    found = []
    for block in model.blocks[:layers]:
        attention = block.attn
        plain = attention.forward

        def capture(x, mask=None, return_weights=False, _plain=plain):
            out, weights = _plain(x, mask=mask, return_weights=True)
            found.append(weights[0])
            return (out, weights) if return_weights else out

        attention.forward = capture
    try:
        model(ids)
    finally:
        for block in model.blocks[:layers]:
            del block.attn.forward  # back to the class's method
    return [[w[h].diagonal(-1)[10:].mean().item() for h in range(w.shape[0])] for w in found]


@torch.no_grad()
def position_similarity(model, offsets=(1, 10)) -> list[float]:
    """Mean cosine similarity between the position vectors of positions p and p + k, for each k."""
    unit = torch.nn.functional.normalize(model.pos_emb.weight.float(), dim=-1)
    return [(unit[k:] * unit[:-k]).sum(-1).mean().item() for k in offsets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", action="append", default=[], metavar="LABEL=PATH",
                        help="also test this checkpoint, shown as LABEL (no path is printed)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    args = parser.parse_args()
    set_threads(args.threads)
    models = [(name, dataset_path(name)) for name in SHIPPED]
    for spec in args.ckpt:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--ckpt takes LABEL=PATH, e.g. \"longer base=runs/base/ckpt.pt\"; got {spec!r}")
        models.append((label, Path(path)))
    lines = [f"{'model':<40}{'first copy':>11}{'repetition':>11}{'pos +1':>8}{'pos +10':>8}"
             "   previous-character attention, layers 1-2 (per head)"]
    for label, path in models:
        if not path.exists():
            lines.append(f"{label:<40}  (not found; skipped)")
            continue
        model, tokenizer = load_model(path)
        model.eval()
        first, second = repeat_loss(model, tokenizer)
        heads = " | ".join(" ".join(f"{w:.2f}" for w in layer) for layer in previous_char_attention(model, tokenizer))
        near, far = position_similarity(model)
        lines.append(f"{label:<40}{first:>11.2f}{second:>11.2f}{near:>8.2f}{far:>8.2f}   {heads}")
        print(lines[-1], flush=True)
    lines.append(f"loss per character, 20 random strings of 30 letters (uniform guessing: ln 26 = 3.26); pos +k: "
                 f"cosine similarity of the position vectors of positions p and p + k; "
                 f"load average {load_average()}; torch {torch.__version__}")
    print("\n".join([lines[0], lines[-1]]))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out.name}")


if __name__ == "__main__":
    main()
