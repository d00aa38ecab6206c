"""Continue a prompt with a trained checkpoint (chapter 5).

Examples:
  python -m buildgpt generate --ckpt runs/shakespeare --prompt "ROMEO:" --temperature 0.8 --top-k 50
  python -m buildgpt generate --ckpt datasets/shakespeare-char.pt --prompt "To be" --top-p 0.9 --seed 1
  python -m buildgpt generate --ckpt runs/shakespeare --prompt "KING:" --temperature 0   # greedy

--ckpt is a checkpoint file or a run folder written by `python -m buildgpt train` (its ckpt.pt).
Temperature 0 is greedy decoding; otherwise the next token is drawn from the model's distribution
after temperature, top-k and top-p (buildgpt.sampling). --seed makes a sample repeatable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from buildgpt.commands import CommandError
from buildgpt.impl import add_impl_argument, load_impl
from buildgpt.threads import THREADS_HELP, set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint file, or a run folder (runs/NAME)")
    parser.add_argument("--prompt", default="\n", help="the text to continue (default: a line break)")
    parser.add_argument("--max-new-tokens", type=int, default=300, help="how many tokens to add (default 300)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; 1 the model's own distribution (default 0.8)")
    parser.add_argument("--top-k", type=int, help="sample only from the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="sample only from the smallest set with probability mass p")
    parser.add_argument("--num-samples", type=int, default=1, help="how many continuations (default 1)")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable sample")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    add_impl_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    impl = load_impl(args)  # buildgpt, or the student's own package (--impl mygpt)
    set_threads(args.threads)
    load_model, resolve_device, generate = impl.checkpoint.load_model, impl.data.resolve_device, impl.sampling.generate

    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise CommandError("--max-new-tokens must be >= 0 and --num-samples >= 1")
    device = resolve_device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else resolve_device(args.device)
    model, tokenizer = load_model(args.ckpt, device=device)
    try:
        ids = tokenizer.encode(args.prompt)
    except (KeyError, ValueError):
        raise CommandError(f"the prompt has characters this model's tokenizer does not know; "
                           f"use only characters from its training text") from None
    if not ids:
        raise CommandError("the prompt is empty after tokenization; give some text with --prompt")
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    idx = torch.tensor([ids] * args.num_samples, dtype=torch.long, device=device)
    out = generate(model, idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, generator=generator)
    for k, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {k + 1}")
        print(tokenizer.decode(row))
    return 0
