"""Make chapter 8's on-policy preference pairs: datasets/preference-pairs.json.

The instruction-tuned model of chapter 7 (datasets/instruct-sft.pt) answers training instructions of
the checkable task families (datasets/instruct-tasks.json) once greedily and --samples - 1 more times
at --temperature; chapter 7's checker (buildgpt.tasks.check_answer) judges each answer; a good answer
(ended with end-of-text, accepted by the checker) is paired with a bad one (buildgpt.align.make_pairs;
the reference answer takes the chosen side when no sample is good). Training pairs come from the
training split, validation pairs from the validation split; the test split is never read.

    python scripts/make_preference_pairs.py [--per-family 200] [--samples 4] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", default=None, help="the SFT checkpoint (default: datasets/instruct-sft.pt)")
    parser.add_argument("--tasks", default=None, help="the task file (default: datasets/instruct-tasks.json)")
    parser.add_argument("--out", default=str(ROOT / "datasets" / "preference-pairs.json"))
    parser.add_argument("--per-family", type=int, default=200, help="training instructions per family (default 200)")
    parser.add_argument("--val-per-family", type=int, default=25, help="validation instructions per family (default: 25)")
    parser.add_argument("--samples", type=int, default=4, help="answers per instruction: 1 greedy + samples - 1 sampled")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from buildgpt.align import make_pairs
    from buildgpt.checkpoint import load_model
    from buildgpt.resources import dataset_path
    from buildgpt.tasks import TASK_FAMILIES, check_answer, load_tasks

    ckpt = Path(args.ckpt) if args.ckpt else dataset_path("instruct-sft.pt")
    model, tokenizer = load_model(ckpt)
    tasks = load_tasks(args.tasks)
    rng = random.Random(args.seed)
    chosen_items = {}
    for split, per_family in (("train", args.per_family), ("val", args.val_per_family)):
        items = []
        for family in TASK_FAMILIES:
            of_family = [item for item in tasks[split] if item["family"] == family]
            items += rng.sample(of_family, min(per_family, len(of_family)))
        chosen_items[split] = items
    test_prompts = {(i["instruction"], i.get("input", "")) for i in tasks["test"]}
    assert not any((i["instruction"], i.get("input", "")) in test_prompts for s in chosen_items.values() for i in s), (
        "a test instruction would become a preference pair")

    out, counts, seconds = {}, {}, {}
    for split, items in chosen_items.items():
        start = time.perf_counter()
        out[split], counts[split] = make_pairs(model, tokenizer, items, check_answer, samples=args.samples,
                                               temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                               seed=args.seed + (split == "val"))
        seconds[split] = round(time.perf_counter() - start, 1)
        print(f"{split}: {len(out[split])} pairs from {len(items)} instructions ({counts[split]}) in {seconds[split]} s", flush=True)
    command = "python scripts/make_preference_pairs.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("ckpt", "tasks", "out", "threads"))
    meta = {"command": command, "model": ckpt.name,
            "model_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
            "counts": counts, "seconds": seconds, "torch": torch.__version__,
            "rule": "chosen: an answer that ended with end-of-text and passes buildgpt.tasks.check_answer (the reference "
                    "output when no sample does, chosen_source 'reference'); rejected: the greedy answer if it fails, "
                    "else the first failing sample"}
    Path(args.out).write_text(json.dumps({"meta": meta, "train": out["train"], "val": out["val"]}, indent=1,
                                         ensure_ascii=False) + "\n", encoding="utf-8")
    print("wrote", Path(args.out).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
