"""Manual attention (buildgpt.attention) against PyTorch's fused kernel, at a few sizes.

    python benchmarks/attention.py [--repeats 10] [--threads N] [--device cpu|cuda]

For each size it times, with the causal mask:
- forward: scaled_dot_product_attention(q, k, v, mask) from buildgpt.attention (the manual path,
  which writes the (B, h, T, T) scores and weights to memory) against
  F.scaled_dot_product_attention(q, k, v, attn_mask=mask) (one fused kernel);
- forward + backward: the same, plus the gradients of q, k and v.
Times are medians of `repeats` runs after one warm-up, in milliseconds, the two paths taking
turns. It also checks that the two paths agree, and prints the largest difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from buildgpt.attention import causal_mask, scaled_dot_product_attention  # noqa: E402

SIZES = [  # (B, n_heads, T, head_dim)
    (8, 4, 64, 32),
    (8, 8, 128, 32),
    (8, 8, 256, 32),
    (4, 12, 512, 64),
]


def median_ms(fns, repeats: int, device: torch.device) -> list[float]:
    """Median wall time of each function in fns, in milliseconds, after one untimed warm-up call each.

    The functions take turns (a, b, a, b, ...), so a slow spell of a shared machine hits them alike."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            spent.append(time.perf_counter() - start)
    return [1e3 * statistics.median(spent) for spent in times]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"PyTorch {torch.__version__} on {device} ({torch.get_num_threads()} CPU threads); "
          f"median of {args.repeats} runs, causal mask, float32")
    header = (f"{'B, heads, T, head_dim':>22} | {'forward ms':^27} | {'forward + backward ms':^27} | max |diff|")
    print(header)
    print(f"{'':>22} | {'manual':>8} {'fused':>8} {'speed-up':>9} | {'manual':>8} {'fused':>8} {'speed-up':>9} |")
    print("-" * len(header))
    gen = torch.Generator(device="cpu").manual_seed(0)
    for B, H, T, D in SIZES:
        q, k, v = (torch.randn(B, H, T, D, generator=gen).to(device) for _ in range(3))
        mask = causal_mask(T, device=device)
        with torch.no_grad():
            ours = scaled_dot_product_attention(q, k, v, mask=mask)[0]
            theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            diff = (ours - theirs).abs().max().item()
            fwd_manual, fwd_fused = median_ms([lambda: scaled_dot_product_attention(q, k, v, mask=mask),
                                               lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)],
                                              args.repeats, device)
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

        def backward_manual():
            scaled_dot_product_attention(qg, kg, vg, mask=mask)[0].sum().backward()

        def backward_fused():
            F.scaled_dot_product_attention(qg, kg, vg, attn_mask=mask).sum().backward()

        bwd_manual, bwd_fused = median_ms([backward_manual, backward_fused], args.repeats, device)
        print(f"{f'{B}, {H}, {T}, {D}':>22} | {fwd_manual:8.2f} {fwd_fused:8.2f} {fwd_manual / fwd_fused:8.1f}x | "
              f"{bwd_manual:8.2f} {bwd_fused:8.2f} {bwd_manual / bwd_fused:8.1f}x | {diff:.1e}")


if __name__ == "__main__":
    main()
