"""Chapter 8's measurement: the chapter-7 checker's exact-match and end-of-text rates on the held-out
checkable instructions, before DPO (datasets/instruct-sft.pt) and after (datasets/instruct-dpo.pt,
made by `python -m buildgpt dpo`), per family, with the drift of the DPO model (mean log-ratio of its
own greedy answers against the SFT model); and, with --sweep, the same DPO training for several betas.

Writes benchmarks/results/align.json and align.md (the before/after table), and with --sweep also
datasets/dpo-beta-sweep.json, which chapter 8 loads for its beta plot.

    python benchmarks/align.py [--threads 1]
    python benchmarks/align.py --sweep 0.03,0.1,0.3,1.0 --sweep-steps 150 [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft", default=str(ROOT / "datasets" / "instruct-sft.pt"))
    parser.add_argument("--dpo", default=str(ROOT / "datasets" / "instruct-dpo.pt"))
    parser.add_argument("--pairs", default=str(ROOT / "datasets" / "preference-pairs.json"))
    parser.add_argument("--sweep", default=None, help="comma-separated betas to train and measure (e.g. 0.03,0.1,0.3,1.0)")
    parser.add_argument("--sweep-steps", type=int, default=150)
    parser.add_argument("--sweep-lr", type=float, default=1e-4)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sweep-out", default=str(ROOT / "datasets" / "dpo-beta-sweep.json"),
                        help="where the chapter's copy of the sweep goes (default datasets/dpo-beta-sweep.json)")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from machine import load_average

    from buildgpt.align import checker_accuracy, dpo_train, load_pairs, mean_log_ratio
    from buildgpt.checkpoint import load_checkpoint, load_model
    from buildgpt.tasks import TASK_FAMILIES, check_answer, load_tasks

    test = [item for item in load_tasks()["test"] if item["family"] in TASK_FAMILIES]
    sft, tokenizer = load_model(args.sft)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.sweep is not None and (results_dir / "align.json").is_file():  # measured by the run without --sweep
        before = json.loads((results_dir / "align.json").read_text(encoding="utf-8"))["sft"]
    else:
        before = checker_accuracy(sft, tokenizer, test, check_answer, args.max_new_tokens, progress=False)
    print(f"SFT: exact {before['exact']:.1%}, ended {before['ended']:.1%} ({time.perf_counter() - start:.0f} s)", flush=True)

    if args.sweep is None:
        dpo, _ = load_model(args.dpo)
        run = load_checkpoint(args.dpo)["extra"].get("dpo", {})
        after = checker_accuracy(dpo, tokenizer, test, check_answer, args.max_new_tokens, progress=False)
        drift = mean_log_ratio(dpo, sft, tokenizer, test, args.max_new_tokens, seed=0)
        fail_before, fail_after = 1 - before["exact"], 1 - after["exact"]
        removed = (fail_before - fail_after) / fail_before if fail_before else 0.0
        table = {"n": len(test), "sft": {k: before[k] for k in ("exact", "ended", "by_family")},
                 "dpo": {k: after[k] for k in ("exact", "ended", "by_family")}, "drift": drift,
                 "failures_removed": removed, "dpo_command": run.get("command"), "load": load_average(),
                 "seconds": round(time.perf_counter() - start, 1), "threads": args.threads, "torch": torch.__version__}
        (results_dir / "align.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        lines = [f"# Chapter 8: before and after DPO ({len(test)} held-out checkable instructions, greedy)", "",
                 f"DPO model: `{run.get('command')}`", "",
                 "| | SFT | DPO |", "| --- | --- | --- |",
                 f"| exact match | {before['exact']:.1%} | {after['exact']:.1%} |",
                 f"| ended with end-of-text | {before['ended']:.1%} | {after['ended']:.1%} |"]
        lines += [f"| {family} | {before['by_family'][family]:.1%} | {after['by_family'][family]:.1%} |" for family in TASK_FAMILIES]
        lines += ["", f"Failure rate {fail_before:.1%} -> {fail_after:.1%}: {removed:.0%} of the SFT model's failures removed. "
                  f"Drift (estimated KL(DPO || SFT): mean log-ratio of one sampled answer per instruction): {drift:.2f} nats.",
                  f"Measured in {table['seconds']} s on {args.threads} thread(s), load average {table['load']}, torch {torch.__version__}."]
        (results_dir / "align.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join(lines))
        return 0

    train_pairs, val_pairs = load_pairs(args.pairs)
    runs = []

    def write_sweep(runs: list[dict]) -> None:
        betas = ",".join(f"{run['beta']:g}" for run in runs)
        sweep = {"command": f"python benchmarks/align.py --sweep {betas} --sweep-steps {args.sweep_steps} --sweep-lr {args.sweep_lr}",
                 "load": load_average(), "steps": args.sweep_steps, "lr": args.sweep_lr, "batch_size": 8, "n_test": len(test),
                 "sft": {"exact": before["exact"], "ended": before["ended"]}, "runs": runs, "torch": torch.__version__}
        text = json.dumps(sweep, indent=1) + "\n"
        (results_dir / "align-sweep.json").write_text(text, encoding="utf-8")
        Path(args.sweep_out).write_text(text, encoding="utf-8")
        print(f"wrote align-sweep.json and {Path(args.sweep_out).name} (load {sweep['load']})", flush=True)

    shipped, table_path = None, results_dir / "align.json"
    if Path(args.dpo).is_file() and table_path.is_file():  # the shipped DPO run counts as one point if it matches
        shipped = load_checkpoint(args.dpo)["extra"].get("dpo", {})
        table = json.loads(table_path.read_text(encoding="utf-8"))
        if (shipped.get("steps"), shipped.get("lr"), shipped.get("batch_size"), shipped.get("lora_rank")) != (
                args.sweep_steps, args.sweep_lr, 8, 0) or table.get("dpo_command") != shipped.get("command"):
            shipped = None
    for beta in (float(b) for b in args.sweep.split(",")):
        if shipped is not None and shipped["beta"] == beta:
            runs.append({"beta": beta, "exact": table["dpo"]["exact"], "ended": table["dpo"]["ended"],
                         "drift": table["drift"], "val_accuracy": shipped["val_accuracy"],
                         "val_margin": shipped["val_margin"], "from": "the shipped instruct-dpo.pt (benchmarks/results/align.json)"})
            print(runs[-1], flush=True)
            write_sweep(runs)
            continue
        torch.manual_seed(0)
        policy, reference = copy.deepcopy(sft), copy.deepcopy(sft)
        tick = time.perf_counter()
        history = dpo_train(policy, reference, train_pairs, val_pairs, tokenizer, steps=args.sweep_steps, beta=beta,
                            batch_size=8, lr=args.sweep_lr, eval_every=args.sweep_steps, progress=False)
        result = checker_accuracy(policy, tokenizer, test, check_answer, args.max_new_tokens, progress=False)
        runs.append({"beta": beta, "exact": result["exact"], "ended": result["ended"],
                     "drift": mean_log_ratio(policy, sft, tokenizer, test, args.max_new_tokens, seed=0),
                     "val_accuracy": history["val_accuracy"][-1], "val_margin": history["val_margin"][-1],
                     "seconds": round(time.perf_counter() - tick, 1)})
        print(runs[-1], flush=True)
        write_sweep(runs)  # after every beta, so a stopped sweep keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
