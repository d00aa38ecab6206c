"""The "Your GPT" page, timed: every command the page gives, run as a student runs them.

    python benchmarks/your_gpt.py [--out benchmarks/results/your-gpt.json] [--steps 400]

The student is simulated by the released notebooks of book/ with the reference answers filled in
(tests/notebooks.py), saved the way a browser saves downloads ("Copy of 03-attention (1).ipynb").
Then, with the page's options: assemble, train on TinyShakespeare with --impl, compare with the
reference code, generate, pretrain a small base model on chapter 7's text, fine-tune it with LoRA,
chat. Prints the wall time and the key output line of each, and the machine's load average
(timings on a shared machine depend on it). All commands run on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "your-gpt.json")
    parser.add_argument("--steps", type=int, default=400, help="pretraining steps (the page's 400)")
    parser.add_argument("--base-steps", type=int, default=200, help="steps of the base model for fine-tuning (the page's 200)")
    parser.add_argument("--finetune-steps", type=int, default=100, help="fine-tuning steps (the page's 100)")
    args = parser.parse_args()

    import nbformat

    from tests.notebooks import CHAPTERS, solved_notebook

    results = {"load_average_start": load_average(), "steps": []}
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="your-gpt-") as tmp:
        work = Path(tmp)
        notebooks = work / "my-notebooks"
        notebooks.mkdir()
        for chapter in CHAPTERS:
            if chapter.student_notebook.is_file():
                name = f"Copy of {chapter.slug} (1).ipynb" if chapter.number == "03" else f"{chapter.slug}.ipynb"
                nbformat.write(solved_notebook(chapter), notebooks / name)

        def run(label: str, command: list[str], stdin: str | None = None) -> str:
            started = time.perf_counter()
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, input=stdin)
            seconds = time.perf_counter() - started
            text = (done.stdout + done.stderr).replace(str(work), ".")
            lines = [line for line in text.splitlines() if line.strip() and "it/s" not in line and "step/s" not in line
                     and "s/step" not in line]
            print(f"{label}: {seconds:.0f} s, exit {done.returncode}, load {load_average()}", flush=True)
            for line in lines[-6:]:
                print(f"    {line[:200]}", flush=True)
            results["steps"].append({"label": label, "command": " ".join(command[1:]).replace(str(ROOT) + "/", ""),
                                     "seconds": round(seconds, 1), "exit": done.returncode, "tail": lines[-6:],
                                     "load_average": load_average()})
            if done.returncode != 0:
                raise SystemExit(f"{label} failed")
            return text

        data = str(ROOT / "datasets" / "tinyshakespeare.txt")
        run("assemble", [py, "-m", "autograder", "assemble", "my-notebooks", "--out", "mygpt"])
        every = max(1, args.steps // 4)
        run("train", [py, "-m", "buildgpt", "train", "--impl", "mygpt", "--data", data, "--out", "runs/mine",
                      "--max-steps", str(args.steps), "--eval-interval", str(every), "--threads", "1", "--no-progress"])
        run("compare", [py, "-m", "autograder", "compare", "runs/mine", "--threads", "1"])
        run("generate", [py, "-m", "buildgpt", "generate", "--impl", "mygpt", "--ckpt", "runs/mine", "--prompt", "ROMEO:",
                         "--max-new-tokens", "200", "--seed", "1"])
        run("pretraining text", [py, str(ROOT / "scripts" / "make_instruction_tasks.py"), "--pretrain-text",
                                 "runs/instruct-pretrain.txt", "--out", "runs/instruct-tasks.json"])  # chapter 7's base text
        run("base model", [py, "-m", "buildgpt", "train", "--impl", "mygpt", "--data", "runs/instruct-pretrain.txt",
                           "--context-length", "384", "--batch-size", "8", "--max-steps", str(args.base_steps),
                           "--warmup-steps", "20", "--eval-interval", str(args.base_steps), "--threads", "1",
                           "--no-progress", "--out", "runs/my-base"])
        run("finetune", [py, "-m", "buildgpt", "finetune", "--impl", "mygpt", "--ckpt", "runs/my-base", "--data",
                         str(ROOT / "datasets" / "instruction-data.json"), "--lora-rank", "8", "--steps",
                         str(args.finetune_steps), "--eval-every", str(args.finetune_steps), "--test-answers", "20",
                         "--out", "runs/my-chat"])
        run("chat", [py, "-m", "buildgpt", "chat", "--impl", "mygpt", "--ckpt", "runs/my-chat"],
            stdin="Name three primary colors.\nRewrite the sentence in the passive voice. || The cat chased the mouse.\n")
    results["load_average_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
