"""Make datasets/messy-corpus.jsonl: chapter 10's messy corpus, with every injection labelled.

    python scripts/make_messy_corpus.py [--out datasets/messy-corpus.jsonl] [--seed 10]

Clean documents are consecutive speeches of TinyShakespeare's first 300,000 characters (its training
part) and the paragraphs of "The Verdict", grouped into documents of 400 to 1,500 characters. Noise
of known kinds is added, as a web crawl would have it:
  exact-duplicate  a clean document again, sometimes with its case or white space changed
  near-duplicate   a clean document with 2 to 5 words replaced, deleted or inserted
  boilerplate      navigation, cookie and subscription lines, repeated, around a short snippet
  html             a clean document with HTML tags and entities left in
  numbers          tables and lists of numbers
  short            a line or two of real text (too short to teach much)
Each line is {"id", "kind", "of" (the clean document a duplicate copies, else null), "text"}; the
documents are shuffled. Same seed, same file, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"exact-duplicate": 30, "near-duplicate": 40, "boilerplate": 20, "html": 20, "numbers": 20, "short": 25}
NAV = ["Home | Plays | Sonnets | Poems | About | Contact", "Sign in to continue reading.", "Accept all cookies",
       "Subscribe to our newsletter for weekly updates!", "Share on Facebook | Share on Twitter | Email",
       "Copyright 2024 Classic Texts Online. All rights reserved.", "Privacy Policy | Terms of Use",
       "Click here to read more", "Advertisement", "Next page >>", "Related articles"]
WORDS = ["good", "lord", "sweet", "noble", "night", "heart", "death", "love", "king", "fair", "friend", "honest"]


def clean_documents(seed: int) -> list[str]:
    shakespeare = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:300_000]
    verdict = (ROOT / "datasets" / "the-verdict.txt").read_text(encoding="utf-8")
    docs = []
    for text, sep in ((shakespeare, "\n\n"), (verdict, "\n")):
        current = ""
        for para in text.split(sep):
            para = para.strip()
            if not para:
                continue
            current = f"{current}\n\n{para}" if current else para
            if len(current) >= 400:
                docs.append(current[:1500].rsplit("\n", 1)[0] if len(current) > 1500 else current)
                current = ""
    return docs


def near_duplicate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(2, 5)):
        i = rng.randrange(len(words))
        op = rng.choice(["replace", "delete", "insert"])
        if op == "replace":
            words[i] = rng.choice(WORDS)
        elif op == "delete" and len(words) > 10:
            del words[i]
        else:
            words.insert(i, rng.choice(WORDS))
    return " ".join(words)


def exact_duplicate(text: str, rng: random.Random) -> str:
    variant = rng.choice(["same", "upper", "spaces"])
    if variant == "upper":
        return text.upper()
    if variant == "spaces":
        return "  " + text.replace(" ", "  ").replace("\n", " \n") + "\n"
    return text


def boilerplate(rng: random.Random, snippet: str) -> str:
    lines = []
    for _ in range(rng.randint(3, 5)):
        lines += rng.sample(NAV, 4)
    lines.insert(rng.randrange(len(lines)), snippet)
    return "\n".join(lines)


def html(text: str, rng: random.Random) -> str:
    lines = [f"<p>{line}</p>" if rng.random() < 0.6 else f"{line}&nbsp;<br/>" for line in text.split("\n")]
    return "<div class=\"play-text\">\n" + "\n".join(lines) + "\n</div>"


def numbers(rng: random.Random) -> str:
    rows = rng.randint(15, 40)
    if rng.random() < 0.5:
        head = rng.choice(["Table", "Results", "Index", "Scores"]) + f" {rng.randint(1, 9)}"
        body = [f"{r + 1}. {rng.randint(100, 99999)} {rng.random() * 100:.2f} {rng.randint(0, 9)}" for r in range(rows)]
    else:
        head = "ID,VALUE,COUNT"
        body = [f"{rng.randint(1000, 9999)},{rng.random():.4f},{rng.randint(1, 500)}" for _ in range(rows)]
    return "\n".join([head, *body])


def short(text: str, rng: random.Random) -> str:
    lines = [line for line in text.split("\n") if line.strip()]
    start = rng.randrange(max(1, len(lines) - 1))
    return "\n".join(lines[start:start + rng.randint(1, 2)])


def make(seed: int) -> list[dict]:
    rng = random.Random(seed)
    clean = clean_documents(seed)
    docs = [{"kind": "clean", "of": None, "text": t} for t in clean]
    for kind, count in COUNTS.items():
        for _ in range(count):
            k = rng.randrange(len(clean))
            if kind == "exact-duplicate":
                docs.append({"kind": kind, "of": k, "text": exact_duplicate(clean[k], rng)})
            elif kind == "near-duplicate":
                docs.append({"kind": kind, "of": k, "text": near_duplicate(clean[k], rng)})
            elif kind == "boilerplate":
                docs.append({"kind": kind, "of": None, "text": boilerplate(rng, short(clean[k], rng))})
            elif kind == "html":
                docs.append({"kind": kind, "of": None, "text": html(clean[k], rng)})
            elif kind == "numbers":
                docs.append({"kind": kind, "of": None, "text": numbers(rng)})
            else:
                docs.append({"kind": kind, "of": None, "text": short(clean[k], rng)})
    order = list(range(len(docs)))
    rng.shuffle(order)
    new_id = {old: new for new, old in enumerate(order)}  # clean document k is at new_id[k]
    out = []
    for old in order:
        d = docs[old]
        out.append({"id": new_id[old], "kind": d["kind"], "of": None if d["of"] is None else new_id[d["of"]], "text": d["text"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / "messy-corpus.jsonl")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    docs = make(args.seed)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    kinds = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    print(f"wrote {len(docs)} documents to {args.out.name}: {kinds}")


if __name__ == "__main__":
    main()
