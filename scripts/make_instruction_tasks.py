"""Make chapter 7's checkable instruction data and the text its base model is pretrained on.

    python scripts/make_instruction_tasks.py                      # writes datasets/instruct-tasks.json
    python scripts/make_instruction_tasks.py --pretrain-text runs/instruct-pretrain.txt

Six task families whose answers a program checks exactly (buildgpt.tasks.check_answer): arithmetic,
spelling, letters, counting, reformat and passage (who speaks in a Shakespeare passage). Words,
phrases, number pairs and passages are drawn with a fixed seed from TinyShakespeare and split into
disjoint pools for train, validation and test, so a test item asks about a word, a sum or a passage
that no training item contains. Arithmetic and passage get twice the training items
(TRAIN_SIZES), half of the training passages have their speakers renamed (RENAMED) and half of the
training sums have three digits (WIDE_SUMS); validation and test items are made first, so these
choices leave them unchanged. The 1,100 Alpaca-style records of datasets/instruction-data.json are
mixed in (family "alpaca") with chapter 7's split (seed 123: 935 / 55 / 110). The script refuses to
write a file in which a validation or test prompt (instruction and input) is also a training prompt.

--pretrain-text also writes the base model's pretraining text: TinyShakespeare in chunks, the
training items written as plain sentences ("castle is spelled c-a-s-t-l-e."), and the training
Alpaca records as plain text, documents shuffled and each ended by the end-of-text character "\\x03".
It holds no prompt template and no validation or test item.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from buildgpt.instruct import END_OF_TEXT_CHAR, split_dataset  # noqa: E402
from buildgpt.tasks import TASK_FAMILIES, check_answer  # noqa: E402

SEED = 2026
SIZES = {"train": 1200, "val": 25, "test": 50}  # items per family and split
# The two families that fail by copying get twice the training items (see RENAMED and WIDE_SUMS).
TRAIN_SIZES = {"arithmetic": 2400, "passage": 2400}
# Half of the training passages have their two speakers renamed to random words in capitals, so the
# answer can only be read from the passage, not recalled from a list of the plays' speakers.
RENAMED = 0.5
# Half of the training sums add a one-digit number to a three-digit one (157 + 8): the same rule for
# units and carry as the test's two-digit sums, on 8,100 sums too many to learn by heart.
WIDE_SUMS = 0.5

PHRASINGS = {
    "arithmetic": ["What is {a} + {b}?", "Add {b} to {a}.", "Compute {a} + {b}.", "What do you get when you add {a} and {b}?"],
    "spelling": ["Spell the word \"{w}\" letter by letter.", "Spell \"{w}\" with hyphens between the letters.",
                 "How do you spell \"{w}\"? Give it letter by letter."],
    "first": ["What is the first letter of \"{w}\"?", "Which letter does the word \"{w}\" start with?"],
    "last": ["What is the last letter of \"{w}\"?", "Which letter does the word \"{w}\" end with?"],
    "counting": ["How many letters are in the word \"{w}\"?", "Count the letters of \"{w}\".",
                 "How long is the word \"{w}\", in letters?"],
    "upper": ["Rewrite this phrase in capital letters.", "Write the input in uppercase."],
    "lower": ["Rewrite this phrase in lowercase.", "Write the input in small letters."],
    "passage": {"first": ["Who speaks first in this passage?", "Name the first speaker of this passage."],
                "second": ["Who speaks second in this passage?", "Name the second speaker of this passage."],
                "last": ["Who speaks last in this passage?", "Who has the last word in this passage?"]},
}


def word_pools(text: str, rng: random.Random) -> dict[str, list[str]]:
    """Lowercase words of 3 to 9 letters that occur at least twice, split into disjoint pools."""
    counts: dict[str, int] = {}
    for w in re.findall(r"[A-Za-z]+", text):
        counts[w] = counts.get(w, 0) + 1
    words = sorted(w for w, n in counts.items() if n >= 2 and w.islower() and 3 <= len(w) <= 9)
    rng.shuffle(words)
    return {"test": words[:300], "val": words[300:450], "train": words[450:]}


def phrase_pools(text: str, rng: random.Random) -> dict[str, list[str]]:
    """Two or three consecutive words of a line, lowercased (letters only, 6 to 24 characters), disjoint pools."""
    phrases = set()
    for line in text.splitlines():
        words = [w for w in line.split() if w.isalpha() and w.isascii() and len(w) >= 2]
        for i in range(0, len(words) - 2, 3):
            phrase = " ".join(words[i:i + 2 + (i % 2)]).lower()
            if 6 <= len(phrase) <= 24:
                phrases.add(phrase)
    phrases = sorted(phrases)
    rng.shuffle(phrases)
    return {"test": phrases[:300], "val": phrases[300:450], "train": phrases[450:]}


def first_line(speech: str, limit: int = 48) -> str:
    line = speech.strip().splitlines()[0]
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def passage_pools(text: str) -> dict[str, list[tuple[str, str, str]]]:
    """(passage, first speaker, second speaker) of two consecutive speeches by different speakers.

    The text is split by place: passages from the last tenth of the play text are for testing, the
    tenth before it for validation, the rest for training, so no speech is in two splits.
    """
    blocks = [b for b in text.split("\n\n") if re.match(r"^[A-Z][A-Za-z ]{1,24}:\n", b)]
    pools = {"train": [], "val": [], "test": []}
    n = len(blocks)
    place = lambda i: "test" if i >= 0.9 * n else "val" if i >= 0.8 * n else "train"
    for i in range(n - 1):
        a_name, a_speech = blocks[i].split(":\n", 1)
        b_name, b_speech = blocks[i + 1].split(":\n", 1)
        if a_name == b_name:
            continue
        passage = f"{a_name}:\n{first_line(a_speech)}\n\n{b_name}:\n{first_line(b_speech)}"
        if place(i) == place(i + 1):  # a pair across a border goes nowhere
            pools[place(i)].append((passage, a_name, b_name))
    return pools


def renamed(passage: str, words: list[str]) -> tuple[str, str, str]:
    """The passage with its two speakers called words[0] and words[1], in capitals."""
    first, second = (w.upper() for w in words)
    (_, a_line), (_, b_line) = (block.split(":\n", 1) for block in passage.split("\n\n"))
    return f"{first}:\n{a_line}\n\n{second}:\n{b_line}", first, second


def make_item(family: str, rng: random.Random, pools: dict, split: str) -> dict:
    if family == "arithmetic":
        wide = split == "train" and rng.random() < WIDE_SUMS
        a, b = rng.choice(pools["wide_sums"] if wide else pools["sums"][split])
        return {"instruction": rng.choice(PHRASINGS["arithmetic"]).format(a=a, b=b), "input": "", "output": str(a + b)}
    if family in ("spelling", "letters", "counting"):
        w = rng.choice(pools["words"][split])
        if family == "spelling":
            return {"instruction": rng.choice(PHRASINGS["spelling"]).format(w=w), "input": "", "output": "-".join(w)}
        if family == "counting":
            return {"instruction": rng.choice(PHRASINGS["counting"]).format(w=w), "input": "", "output": str(len(w))}
        which = rng.choice(["first", "last"])
        return {"instruction": rng.choice(PHRASINGS[which]).format(w=w), "input": "",
                "output": w[0] if which == "first" else w[-1]}
    if family == "reformat":
        phrase = rng.choice(pools["phrases"][split])
        if rng.random() < 0.5:
            shown = phrase if rng.random() < 0.5 else phrase.title()
            return {"instruction": rng.choice(PHRASINGS["upper"]), "input": shown, "output": phrase.upper()}
        return {"instruction": rng.choice(PHRASINGS["lower"]), "input": phrase.upper() if rng.random() < 0.5 else phrase.title(),
                "output": phrase.lower()}
    if family == "passage":
        passage, first, second = rng.choice(pools["passages"][split])
        if split == "train" and rng.random() < RENAMED:
            passage, first, second = renamed(passage, rng.sample(pools["words"]["train"], 2))
        which = rng.choice(["first", "second", "last"])
        return {"instruction": rng.choice(PHRASINGS["passage"][which]), "input": passage,
                "output": first if which == "first" else second}
    raise ValueError(f"unknown family {family!r}")


def plain_sentence(item: dict) -> str:
    """A training item as a plain sentence, the way the base model reads it in pretraining."""
    family, out, ins = item["family"], item["output"], item["instruction"]
    word = re.search(r'"([a-z]+)"', ins)
    if family == "arithmetic":
        a, b = (int(x) for x in re.findall(r"\d+", ins))
        a, b = (b, a) if ins.startswith("Add ") else (a, b)
        return f"{a} + {b} = {out}."
    if family == "spelling":
        return f"{word.group(1)} is spelled {out}."
    if family == "counting":
        return f"The word {word.group(1)} has {out} letters."
    if family == "letters":
        where = "first" if ("first" in ins or "start" in ins) else "last"
        return f"The {where} letter of {word.group(1)} is {out}."
    if family == "reformat":
        how = "in capital letters" if out.isupper() else "in lowercase"
        return f"{item['input']} {how} is {out}."
    if family == "passage":
        speakers = item["input"].split("\n\n")
        a, b = (s.split(":\n", 1)[0] for s in speakers)
        return f"{item['input']}\n\n{a} speaks first, {b} speaks second."
    raise ValueError(family)


def prompt_key(item: dict) -> tuple[str, str]:
    return item["instruction"].strip(), (item.get("input") or "").strip()


def make(seed: int = SEED) -> dict:
    shakespeare = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    rng = random.Random(seed)
    sums = [(a, b) for a in range(10, 100) for b in range(1, 10)]
    rng.shuffle(sums)
    pools = {"words": word_pools(shakespeare, rng), "phrases": phrase_pools(shakespeare, rng),
             "sums": {"test": sums[:150], "val": sums[150:225], "train": sums[225:]},
             "passages": passage_pools(shakespeare),
             "wide_sums": [(a, b) for a in range(100, 1000) for b in range(1, 10)]}
    splits = {"train": [], "val": [], "test": []}
    for split in ("test", "val", "train"):
        taken = {prompt_key(e) for part in splits.values() for e in part}
        for family in TASK_FAMILIES:
            made, tries = 0, 0
            size = TRAIN_SIZES.get(family, SIZES[split]) if split == "train" else SIZES[split]
            while made < size:
                tries += 1
                if tries > 50 * size:
                    raise RuntimeError(f"cannot make {size} distinct {family} items for {split}")
                item = {**make_item(family, rng, pools, split), "family": family}
                if prompt_key(item) in taken:
                    continue
                taken.add(prompt_key(item))
                splits[split].append(item)
                made += 1
    alpaca = json.loads((ROOT / "datasets" / "instruction-data.json").read_text(encoding="utf-8"))
    alpaca_train = None
    dropped = 0
    for split, part in zip(("train", "val", "test"), split_dataset(alpaca, seed=123)):
        records = [{"instruction": e["instruction"], "input": e.get("input", ""), "output": e["output"],
                    "family": "alpaca"} for e in part]
        if alpaca_train is None:
            alpaca_train = {prompt_key(e) for e in records}
        else:  # the Alpaca data repeats a few prompts: keep those in training only
            kept = [e for e in records if prompt_key(e) not in alpaca_train]
            dropped += len(records) - len(kept)
            records = kept
        splits[split] += records
    for split in splits:
        random.Random(seed + len(split)).shuffle(splits[split])
    check_disjoint(splits)
    for item in splits["train"] + splits["val"] + splits["test"]:
        assert check_answer(item, item["output"]), f"the checker rejects its own reference: {item}"
    counts = {s: {f: sum(e["family"] == f for e in part) for f in (*TASK_FAMILIES, "alpaca")} for s, part in splits.items()}
    splits["meta"] = {"made_by": "python scripts/make_instruction_tasks.py", "seed": seed, "counts": counts,
                      "families": list(TASK_FAMILIES),
                      "alpaca": "datasets/instruction-data.json, split with buildgpt.instruct.split_dataset(seed=123); "
                                f"{dropped} validation or test records whose prompt is also a training prompt left out"}
    return splits


def check_disjoint(splits: dict) -> None:
    """Refuse data in which a validation or test prompt (instruction and input) is also a training prompt."""
    train = {prompt_key(e) for e in splits["train"]}
    for split in ("val", "test"):
        shared = [e for e in splits[split] if prompt_key(e) in train]
        if shared:
            raise ValueError(f"{len(shared)} {split} prompts are also training prompts, e.g. "
                             f"{shared[0]['instruction']!r}; the split must keep them apart")


def pretraining_text(tasks: dict, seed: int = SEED) -> str:
    """TinyShakespeare in chunks of speeches, the training items as plain sentences, the training
    Alpaca records as plain text; shuffled, each document ended by END_OF_TEXT_CHAR."""
    shakespeare = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    docs, chunk = [], []
    for speech in shakespeare.split("\n\n"):
        chunk.append(speech)
        if sum(len(s) for s in chunk) > 600:
            docs.append("\n\n".join(chunk))
            chunk = []
    if chunk:
        docs.append("\n\n".join(chunk))
    for item in tasks["train"]:
        if item["family"] == "alpaca":
            docs.append("\n".join(p for p in (item["instruction"], item["input"], item["output"]) if p))
        else:
            docs.append(plain_sentence(item))
    random.Random(seed).shuffle(docs)
    return "".join(doc.strip("\n") + END_OF_TEXT_CHAR + "\n" for doc in docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / "instruct-tasks.json")
    parser.add_argument("--pretrain-text", type=Path, default=None, help="also write the base model's pretraining text here")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    tasks = make(args.seed)
    text = json.dumps(tasks, indent=0, ensure_ascii=False) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out.name}: {len(tasks['train'])} train, {len(tasks['val'])} validation, {len(tasks['test'])} test "
          f"items, {len(text.encode()):,} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()}")
    if args.pretrain_text is not None:
        plain = pretraining_text(tasks, args.seed)
        args.pretrain_text.parent.mkdir(parents=True, exist_ok=True)
        args.pretrain_text.write_text(plain, encoding="utf-8")
        print(f"wrote {args.pretrain_text.name}: {len(plain):,} characters, sha256 "
              f"{hashlib.sha256(plain.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
