"""Chapter 9's benchmark: the `train` command on one process and on two with each strategy.

    python benchmarks/distributed.py [--steps 100] [--preset char-book] [--batch-size 16]
                                     [--out benchmarks/results/distributed.json]

Runs, on character-level TinyShakespeare, the same training three ways: `python -m buildgpt train`
(one process), and `torchrun --standalone --nproc_per_node=2 -m buildgpt train --strategy ddp`
and `--strategy fsdp` (two CPU processes joined by gloo), with one torch thread per process and the
same global batch. For each it prints and records ms per step and tokens per second (training steps
only, as the trainer measures them), the loss after the last step and the validation loss, and the
peak resident memory of every rank. Each run also records the load average before and after it:
two processes on two cores that other programs keep busy wait for each other at every collective,
so the figures depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


# python -c PEAK buildgpt train ...: the train command in this process, then its peak resident memory
PEAK = ("import runpy, sys\n"
        "sys.argv, code = sys.argv[1:], 0\n"
        "try:\n    runpy.run_module('buildgpt', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "from buildgpt.distributed import peak_rss_mb\n"
        "print('PEAK_MB', round(peak_rss_mb()))\n"
        "sys.exit(code)\n")


def run(strategy: str, args, work: Path) -> dict:
    out = work / strategy
    command = ["-m", "buildgpt", "train", "--data", str(ROOT / "datasets" / "tinyshakespeare.txt"), "--out", str(out),
               "--preset", args.preset, "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--eval-interval", str(args.steps), "--eval-iters", "10", "--warmup-steps", str(min(100, args.steps // 10)),
               "--threads", "1", "--no-progress"]
    if strategy == "one process":  # run the command in-process, then print the process's peak memory
        command = [sys.executable, "-c", PEAK, "buildgpt", *command[2:]]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *command,
                   "--strategy", strategy]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    load_before = load_average()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{strategy} failed:\n{done.stderr[-3000:]}")
    history = json.loads((out / "metrics.json").read_text())
    peaks = re.search(r"peak memory per rank: (.*)", done.stdout)
    if peaks:  # the command's own report, gathered from every rank
        peak_mb = [float(x.split()[0]) for x in peaks.group(1).split(",")]
    else:
        peak_mb = [float(re.search(r"PEAK_MB ([0-9.]+)", done.stdout).group(1))]
    seconds = history["elapsed_s"]  # the training steps only, evaluations excluded (what the trainer reports)
    return {"processes": 1 if strategy == "one process" else 2, "ms_per_step": round(1000 * seconds / len(history["step"]), 1),
            "tokens_per_s": round(history["tokens"] / seconds), "loss_last_step": round(history["loss"][-1], 5),
            "val_loss": round(history["evals"][-1]["val_loss"], 5), "peak_mb_per_rank": peak_mb,
            "wall_s": round(wall, 1), "load_before": load_before, "load_after": load_average()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--preset", default="char-book")
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch (sequences per step)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.json")
    args = parser.parse_args()
    print(f"load average before: {load_average()}  ({os.cpu_count()} CPUs)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="distributed-bench-") as tmp:
        work = Path(tmp)
        for strategy in ["one process", "ddp", "fsdp"]:
            results[strategy] = run(strategy, args, work)
    print(f"{args.preset}, global batch {args.batch_size}, {args.steps} steps, one torch thread per process")
    print(f"{'run':12} {'procs':>5} {'ms/step':>8} {'tokens/s':>9} {'loss@last':>9} {'val loss':>8}  peak MB per rank   load before -> after")
    for name, r in results.items():
        print(f"{name:12} {r['processes']:5} {r['ms_per_step']:8.1f} {r['tokens_per_s']:9,} {r['loss_last_step']:9.4f} "
              f"{r['val_loss']:8.4f}  {', '.join(str(round(p)) if p else '?' for p in r['peak_mb_per_rank']):17} "
              f"{r['load_before']} -> {r['load_after']}")
    import torch

    record = {"preset": args.preset, "batch_size": args.batch_size, "steps": args.steps, "torch": torch.__version__,
              "cpus": os.cpu_count(), "gpu": torch.cuda.is_available(), "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
