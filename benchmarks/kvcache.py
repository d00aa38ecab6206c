"""Generation with and without the KV cache (buildgpt.model.generate), in tokens per second.

    python benchmarks/kvcache.py [--preset gpt2] [--layers N] [--lengths 32,128,256]
                                 [--new-tokens 16] [--repeats 3] [--threads N] [--device cpu|cuda]

The model has the shape of a preset (GPT-2 small by default: 12 blocks, C = 768, 12 heads,
V = 50,257, context 1024; --layers keeps the width and changes the depth) and random weights:
speed does not depend on the values. For each prompt length it generates --new-tokens tokens
greedily after a random prompt, batch 1, with use_cache=False (every token recomputes the whole
sequence) and with use_cache=True (the prompt once, then one position per token), and checks that
both give the same tokens. Speeds are new tokens per second, the median of --repeats calls after
one warm-up call each, the two variants taking turns so a slow spell of a shared machine hits both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from machine import load_average  # benchmarks/machine.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from buildgpt.basics import count_parameters  # noqa: E402
from buildgpt.model import GPT, GPTConfig, generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpt2")
    parser.add_argument("--layers", type=int, default=0, help="number of blocks (0: the preset's)")
    parser.add_argument("--lengths", default="32,128,256", help="prompt lengths, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [int(n) for n in args.lengths.split(",")]
    device = torch.device(args.device)
    overrides = {"n_layers": args.layers} if args.layers else {}
    config = GPTConfig.from_preset(args.preset, dropout=0.0, **overrides)
    if max(lengths) + args.new_tokens > config.context_length:
        parser.error(f"the longest prompt plus --new-tokens must fit in the context of {config.context_length}")
    torch.manual_seed(0)
    with torch.device(device):
        model = GPT(config).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    load = load_average()
    print(f"model: preset {args.preset!r}, {config.n_layers} blocks, C = {config.d_model}, {config.n_heads} heads, "
          f"V = {config.vocab_size}: {count_parameters(model) / 1e6:.1f}M parameters, random weights")
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, load average before: {load}")
    print(f"{args.new_tokens} new tokens after a prompt, batch 1, greedy; median of {args.repeats} calls after a warm-up\n")
    print(f"{'prompt':>6} {'uncached tok/s':>15} {'cached tok/s':>13} {'speed-up':>9}  same tokens")
    for length in lengths:
        prompt = torch.randint(0, config.vocab_size, (1, length), generator=torch.Generator().manual_seed(length)).to(device)
        runs = {False: [], True: []}
        outputs = {}
        for cached in (False, True):
            outputs[cached] = generate(model, prompt, args.new_tokens, use_cache=cached)  # warm-up
        for _ in range(args.repeats):
            for cached in (False, True):
                sync()
                start = time.perf_counter()
                out = generate(model, prompt, args.new_tokens, use_cache=cached)
                sync()
                runs[cached].append((out.shape[1] - length) / (time.perf_counter() - start))
        uncached, cached = statistics.median(runs[False]), statistics.median(runs[True])
        same = torch.equal(outputs[False], outputs[True])
        print(f"{length:>6} {uncached:>15.2f} {cached:>13.2f} {cached / uncached:>8.1f}x  {same}", flush=True)
        if not same:
            print("error: the cached generation gave other tokens than the uncached one", file=sys.stderr)
            return 1
    load = load_average()
    print(f"\nload average after: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
