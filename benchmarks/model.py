"""The numbers of chapter 4, measured: parameters, memory and FLOPs of the GPT-2 sizes, agreement with
transformers' GPT-2, training speed of the small presets, and the time to execute the chapter.

    python benchmarks/model.py [--threads N] [--device cpu|cuda] [--steps 5] [--big] [--chapter]

- sizes: parameters of every preset counted on the meta device (no memory) and by
  count_gpt_parameters; weights in float32 and bfloat16; training memory with AdamW in float32
  (16 bytes per parameter, activations not included); FLOPs per token (2N forward, 6N training);
- gpt2 equivalence (when transformers is installed): random GPT2LMHeadModels of a few shapes, their
  weights copied into buildgpt's GPT, the largest |logits difference| and whether the greedy
  continuations are identical;
- speed: median time of one training step (forward, backward, AdamW) of char-tiny and char-small (and,
  with --big, a 12-layer d_model 768 model with a 65-token vocabulary at T = 256), at batch 8 and the
  preset's context;
- --chapter: executes solutions/04-gpt.md top to bottom (hidden tests included) in a fresh kernel and
  prints the wall time, with the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from machine import load_average  # benchmarks/machine.py, beside this script
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.model import GPT, PRESETS, GPTConfig, count_gpt_parameters, generate_greedy  # noqa: E402

from buildgpt.pretrained import convert_gpt2, load_into  # noqa: E402  chapter 6's checked loader




def sizes() -> None:
    print("parameters (meta device = count_gpt_parameters), memory in GiB, FLOPs per token:")
    print(f"{'preset':>12} {'parameters':>15} {'fp32':>8} {'bf16':>8} {'train fp32+AdamW':>17} {'2N fwd':>9} {'6N train':>9}")
    for name in PRESETS:
        config = GPTConfig.from_preset(name)
        with torch.device("meta"):
            built = GPT(config)
        n = sum(p.numel() for p in built.parameters())
        assert n == count_gpt_parameters(config)["total"], name
        print(f"{name:>12} {n:>15,} {4 * n / 2**30:>8.3f} {2 * n / 2**30:>8.3f} {16 * n / 2**30:>17.2f} "
              f"{2 * n / 1e9:>8.3f}G {6 * n / 1e9:>8.3f}G")


def equivalence() -> None:
    try:
        import transformers
    except ImportError:
        print("\ngpt2 equivalence: skipped (transformers is not installed)")
        return
    transformers.logging.set_verbosity_error()
    print(f"\ngpt2 equivalence against transformers {transformers.__version__} (float32, evaluation mode):")
    for n_layer, n_head, n_embd, n_positions, vocab in [(2, 4, 64, 32, 100), (4, 6, 96, 64, 500), (12, 12, 768, 128, 1000)]:
        torch.manual_seed(0)
        theirs = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions, vocab_size=vocab,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
        ours = GPT(GPTConfig(vocab_size=vocab, context_length=n_positions, d_model=n_embd, n_heads=n_head,
                             n_layers=n_layer)).eval()
        load_into(ours, convert_gpt2(theirs.state_dict()))
        with torch.no_grad():
            ids = torch.randint(0, vocab, (4, n_positions), generator=torch.Generator().manual_seed(1))
            gap = (ours(ids) - theirs(ids).logits).abs().max().item()
            prompt = ids[:, :8]
            same = torch.equal(generate_greedy(ours, prompt, 16), theirs.generate(
                prompt, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(prompt), pad_token_id=0))
        print(f"  n_layer={n_layer:2d} n_head={n_head:2d} n_embd={n_embd:3d} T={n_positions:3d} V={vocab:4d}: "
              f"max |logits diff| = {gap:.2e}, same greedy continuation: {same}")


def speed(device: torch.device, steps: int, big: bool) -> None:
    print(f"\ntraining step (forward + backward + AdamW), batch 8, on {device}, median of {steps} after a warm-up; "
          f"load average {load_average()}:")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    models = [("char-tiny", GPTConfig.from_preset("char-tiny")), ("char-small", GPTConfig.from_preset("char-small"))]
    if big:
        models.append(("12 x 768, V=65", GPTConfig(vocab_size=65, context_length=256, d_model=768, n_heads=12, n_layers=12)))
    for label, config in models:
        torch.manual_seed(0)
        model = GPT(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        T = config.context_length
        ids = torch.randint(0, config.vocab_size, (8, T + 1), device=device)
        times = []
        for step in range(steps + 1):
            sync()
            start = time.perf_counter()
            loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync()
            if step:
                times.append(time.perf_counter() - start)
        n = sum(p.numel() for p in model.parameters())
        seconds = statistics.median(times)
        tokens = 8 * T
        print(f"  {label:>15}: {n:>11,} parameters, T={T}: {1e3 * seconds:8.1f} ms per step, "
              f"{tokens / seconds:9.0f} tokens/s, {6 * n * tokens / seconds / 1e9:7.1f} GFLOP/s by 6N")


def chapter() -> None:
    from nbclient import NotebookClient

    from autograder.chapters import Chapter, course_config, source_notebook

    nb = source_notebook(Chapter("04-gpt", ROOT), course_config(ROOT))
    nb.cells = [c for c in nb.cells if c.metadata.get("buildgpt", {}).get("generated") != "setup"]
    print(f"\nexecuting solutions/04-gpt.md (load average {load_average()}) ...")
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    print(f"  executed in {time.perf_counter() - start:.1f} s (load average {load_average()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--big", action="store_true", help="also time a GPT-2-small-sized model (12 x 768)")
    parser.add_argument("--chapter", action="store_true", help="also execute the chapter and time it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes()
    equivalence()
    speed(torch.device(args.device), args.steps, args.big)
    if args.chapter:
        chapter()


if __name__ == "__main__":
    main()
