"""Make datasets/next-line.jsonl: chapter 10's multiple-choice benchmark, "how does this line end?".

    python scripts/make_next_line_benchmark.py [--out datasets/next-line.jsonl] [--seed 10] [--items 200]

Every item is built from the validation part of TinyShakespeare (its last 10%, the part chapter 5's
models never train on). The context is two lines of a speech and the beginning of the next line, cut
inside a word; the 4 options are the rest of that line (the right answer) and the rests of 3 other
lines of that part, each cut inside a word in the same way. Lines have 25 to 70 characters and are
not speaker names; no line is used twice (as target or distractor), so no item gives another away.
The options differ in length, so that scoring by the sum of log-probabilities and scoring by their
mean per character can disagree.
Each line is {"id", "context", "options", "answer" (the index of the right option), "start" (the
character offset of the context in tinyshakespeare.txt)}. Same seed, same file, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def usable(line: str) -> bool:
    return 25 <= len(line) <= 70 and not line.rstrip().endswith(":")


def cut_inside_a_word(line: str, rng: random.Random) -> tuple[str, str]:
    """(head, rest) with the cut between two letters, at least 4 characters in and 8 before the end."""
    places = [k for k in range(4, len(line) - 8) if line[k - 1].isalpha() and line[k].isalpha()]
    k = rng.choice(places)
    return line[:k], line[k:]


def make(seed: int, n_items: int) -> list[dict]:
    text = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    split = int(0.9 * len(text))  # buildgpt.data.prepare_corpus's split for the char tokenizer
    offset = text.index("\n", split) + 1  # start at a whole line
    lines, starts, pos = [], [], offset
    for line in text[offset:].split("\n"):
        lines.append(line)
        starts.append(pos)
        pos += len(line) + 1
    rng = random.Random(seed)
    # a target line with two lines of the same speech before it
    places = [i for i in range(2, len(lines)) if usable(lines[i]) and lines[i - 1].strip() and lines[i - 2].strip()
              and not lines[i - 1].endswith(":") and not lines[i - 2].endswith(":")]
    rng.shuffle(places)
    used: set[int] = set()
    chosen = []
    for i in places:
        if not used & {i - 2, i - 1, i}:
            chosen.append(i)
            used |= {i - 2, i - 1, i}
        if len(chosen) == n_items:
            break
    pool = [j for j in range(len(lines)) if usable(lines[j]) and j not in used]
    rng.shuffle(pool)
    items = []
    for i in sorted(chosen):
        head, rest = cut_inside_a_word(lines[i], rng)
        options = [rest]
        while len(options) < 4:
            other = cut_inside_a_word(lines[pool.pop()], rng)[1]
            if other not in options:
                options.append(other)
        rng.shuffle(options)
        items.append({"id": len(items), "context": f"{lines[i - 2]}\n{lines[i - 1]}\n{head}", "options": options,
                      "answer": options.index(rest), "start": starts[i - 2]})
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / "next-line.jsonl")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    items = make(args.seed, args.items)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} items to {args.out.name}")


if __name__ == "__main__":
    main()
