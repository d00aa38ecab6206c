"""Chapter 7's table: does the fine-tuned model follow instructions it never saw?

    python benchmarks/finetune.py                 # five finetune runs (30 to 50 minutes each on one thread)
    python benchmarks/finetune.py --from-runs     # only evaluate the runs already in runs/instruct-*

From the same base model (datasets/instruct-base.pt, pretrained with chapter 5's `train`), the
`finetune` command makes five models, batches of 16 examples of datasets/instruct-tasks.json:
  full fine-tuning (shipped)      4,500 steps, the prompt masked in the loss (the command's default);
                                  the shipped datasets/instruct-sft.pt, which --export writes
  full, 3,000 steps               the same, shorter (its own learning-rate schedule over 3,000 steps)
  full, prompt not masked         3,000 steps, --no-mask-prompt: the loss counts the prompt too
  LoRA r = 16                     3,000 steps, --lora-rank 16 (alpha 32), lr 5e-3, prompt masked
  LoRA r = 16, not masked         the same with --no-mask-prompt
The masking ablations compare runs of the same length (3,000 steps). The runs can also be made one
by one (two at a time on two cores) with the commands this script prints, and then evaluated with
--from-runs. The validation losses of the rows are not comparable with each other: --no-mask-prompt
changes what the loss averages.
Each run answers the 300 checkable test instructions (50 per family) and saves test-answers.json;
this script answers them with the base model too, checks every answer with
buildgpt.tasks.check_answer, and reports, per model: exact-match accuracy (all and per family),
the share of answers that ended with end-of-text, the steps, the validation loss, minutes and the
machine's load; it keeps each family's first answer and first five wrong answers for the chapter.
The table goes to benchmarks/results/finetune.log, the figures to datasets/instruct-results.json
(which chapter 7 loads).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.checkpoint import load_model  # noqa: E402
from buildgpt.instruct import evaluate_responses  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402
from buildgpt.tasks import TASK_FAMILIES, check_answer, load_tasks  # noqa: E402

COMMON = ["--ckpt", "datasets/instruct-base.pt", "--data", "datasets/instruct-tasks.json", "--batch-size", "16",
          "--seed", "123"]
SHIPPED = ["--steps", "4500", "--eval-every", "500"]
SHORTER = ["--steps", "3000", "--eval-every", "500"]
LORA = ["--lr", "5e-3", "--lora-rank", "16"]
RUNS = {  # name in the table: (run folder, extra options)
    "full fine-tuning (shipped)": ("runs/instruct-sft", [*SHIPPED, "--lr", "2e-3", "--export", "datasets/instruct-sft.pt"]),
    "full, 3,000 steps": ("runs/instruct-sft-3000", [*SHORTER, "--lr", "2e-3"]),
    "full, prompt not masked": ("runs/instruct-nomask", [*SHORTER, "--lr", "2e-3", "--no-mask-prompt"]),
    "LoRA r = 16": ("runs/instruct-lora", [*SHORTER, *LORA]),
    "LoRA r = 16, not masked": ("runs/instruct-lora-nomask", [*SHORTER, *LORA, "--no-mask-prompt"]),
}


def summarize(records: list[dict]) -> dict:
    """Accuracy (re-checked with check_answer), end-of-text rate, per family, of saved answers."""
    for r in records:
        r["correct"] = check_answer(r, r["model_response"])
    by_family = {}
    for family in TASK_FAMILIES:
        mine = [r for r in records if r["family"] == family]
        by_family[family] = {"n": len(mine), "accuracy": sum(r["correct"] for r in mine) / max(len(mine), 1),
                             "ended": sum(r["ended"] for r in mine) / max(len(mine), 1)}
    shown = ("instruction", "input", "output", "model_response", "correct")
    examples = {}  # each family's first test answer, for the chapter to show
    misses = {}  # each family's first five wrong answers
    for r in records:
        examples.setdefault(r["family"], {k: r[k] for k in shown})
        if not r["correct"] and len(misses.setdefault(r["family"], [])) < 5:
            misses[r["family"]].append({k: r[k] for k in shown})
    return {"n": len(records), "accuracy": sum(r["correct"] for r in records) / len(records),
            "ended": sum(r["ended"] for r in records) / len(records), "by_family": by_family, "examples": examples,
            "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-runs", action="store_true", help="evaluate the runs in runs/instruct-* without training")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [f"load average at the start: {load_average()}; {args.threads} thread(s); torch {torch.__version__}"]
    print(lines[0], flush=True)

    for name, (folder, extra) in RUNS.items():
        if args.from_runs:
            continue
        command = [sys.executable, "-m", "buildgpt", "finetune", *COMMON, *extra, "--out", folder,
                   "--threads", str(args.threads), "--no-progress"]
        print("$ python -m buildgpt finetune", " ".join(command[4:]), flush=True)
        subprocess.run(command, cwd=ROOT, check=True)

    test = [e for e in load_tasks()["test"] if e["family"] in TASK_FAMILIES]
    models = {}
    start = time.perf_counter()
    base, tokenizer = load_model(dataset_path("instruct-base.pt"))
    base_summary = evaluate_responses(base, tokenizer, test, ROOT / "runs" / "instruct-base-answers.json",
                                      max_new_tokens=48, progress=False)
    models["base (no fine-tuning)"] = {**summarize(json.loads((ROOT / "runs" / "instruct-base-answers.json").read_text())),
                                       "minutes": None, "val_loss": None}
    assert abs(models["base (no fine-tuning)"]["accuracy"] - base_summary["accuracy"]) < 1e-12
    print(f"base model answered {len(test)} test instructions in {time.perf_counter() - start:.0f} s", flush=True)
    for name, (folder, extra) in RUNS.items():
        run = ROOT / folder
        history = json.loads((run / "history.json").read_text(encoding="utf-8"))
        records = json.loads((run / "test-answers.json").read_text(encoding="utf-8"))
        if len(records) != len(test):
            raise SystemExit(f"{folder}/test-answers.json holds {len(records)} answers, not {len(test)}; run it again")
        models[name] = {**summarize(records), "minutes": history.get("minutes"), "load_average": history.get("load_average"),
                        "val_loss": [history["val_loss"][0], history["val_loss"][-1]], "steps": history["step"][-1],
                        "command": "python -m buildgpt finetune " + " ".join([*COMMON, *extra, "--out", folder])}

    header = (f"{'model':<28}{'steps':>6}{'correct':>8}{'ended':>7}" + "".join(f"{f[:10]:>11}" for f in TASK_FAMILIES)
              + f"{'val loss':>15}{'minutes':>9}{'load':>6}")
    lines.append(header)
    for name, row in models.items():
        per_family = "".join(f"{row['by_family'][f]['accuracy']:>11.0%}" for f in TASK_FAMILIES)
        loss = f"{row['val_loss'][0]:.2f} -> {row['val_loss'][1]:.2f}" if row["val_loss"] else ""
        minutes = f"{row['minutes']:.1f}" if row["minutes"] is not None else ""
        load = f"{row['load_average']:.1f}" if row.get("load_average") is not None else ""
        steps = f"{row['steps']:,}" if row.get("steps") else ""
        lines.append(f"{name:<28}{steps:>6}{row['accuracy']:>8.1%}{row['ended']:>7.1%}{per_family}{loss:>15}{minutes:>9}{load:>6}")
    lines.append(f"load average at the end: {load_average()}")
    print("\n".join(lines[1:]))
    results = {"n_test": len(test), "n_per_family": len(test) // len(TASK_FAMILIES), "families": list(TASK_FAMILIES),
               "machine": f"one thread of a shared 2-core CPU, load average {load_average()} at the end (torch {torch.__version__})",
               "models": models}
    (ROOT / "datasets" / "instruct-results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    out = ROOT / "benchmarks" / "results" / "finetune.log"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote datasets/instruct-results.json and benchmarks/results/{out.name}")


if __name__ == "__main__":
    main()
