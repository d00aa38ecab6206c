"""Clean a text corpus: quality filters, exact and near-duplicate removal (chapter 10).

Examples:
  python -m buildgpt curate datasets/messy-corpus.jsonl --out curated/
  python -m buildgpt curate my_crawl/ --out curated/ --threshold 0.7      # a folder of .txt / .jsonl files
  python -m buildgpt curate corpus.jsonl --out curated/ --no-near         # quality and exact dedup only

IN is a .jsonl file (one {"text": ...} per line), a text file (one document, or several separated
by lines holding only <|endoftext|>), or a folder of such files, read recursively. Documents stream
through, one at a time, so a corpus larger than memory works (memory grows with the number of kept
documents, for their hashes and MinHash signatures, not with their text). Each document meets, in order: the Gopher/C4-style
quality checks (too-short, symbols, repeated-lines, no-stop-words, markup), exact dedup (SHA-1 of
the normalised text), and near-dedup (MinHash, 128 hash functions, LSH with 32 bands of 4, kept
when its estimated Jaccard similarity to every earlier kept document is below --threshold).
OUT receives kept.jsonl, removed.jsonl (each with its reason) and report.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from buildgpt.commands import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="a .jsonl or text file, or a folder of them")
    parser.add_argument("--out", type=Path, required=True, help="a folder for kept.jsonl, removed.jsonl, report.json")
    parser.add_argument("--threshold", type=float, default=0.5, help="estimated Jaccard similarity from which a document is a near duplicate (default 0.5, as The Pile)")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality checks")
    parser.add_argument("--no-exact", action="store_true", help="skip exact dedup")
    parser.add_argument("--no-near", action="store_true", help="skip near-duplicate dedup (MinHash)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def run(args: argparse.Namespace) -> int:
    from buildgpt.curate import curate, read_documents

    if not 0 < args.threshold <= 1:
        raise CommandError(f"--threshold must be in (0, 1], e.g. 0.7; got {args.threshold}")
    if not args.input.exists():
        raise CommandError(f"{args.input} does not exist; pass a .jsonl or .txt file, or a folder of them")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder (it will hold kept.jsonl, removed.jsonl, report.json)")
    documents = read_documents(args.input)
    try:
        first = next(documents)  # errors in the input (binary, empty, not UTF-8) before anything is written
    except StopIteration:
        raise CommandError(f"{args.input} holds no documents; give it some text") from None

    def chained():
        yield first
        yield from documents

    stream = curate(chained(), quality=not args.no_quality, exact=not args.no_exact, near=not args.no_near,
                    threshold=args.threshold)
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="doc", dynamic_ncols=True, file=sys.stderr)
    with open(out / "kept.jsonl", "w", encoding="utf-8") as kept, open(out / "removed.jsonl", "w", encoding="utf-8") as removed:
        for where, text, reason in stream:
            if reason is None:
                kept.write(json.dumps({"where": where, "text": text}, ensure_ascii=False) + "\n")
            else:
                removed.write(json.dumps({"where": where, "reason": reason, "text": text}, ensure_ascii=False) + "\n")
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    report = stream.report
    (out / "report.json").write_text(json.dumps({"documents": report.documents, "kept": report.kept,
                                                 "removed_by": report.removed_by, "failing_check": report.flagged,
                                                 "examples": report.examples}, indent=1) + "\n", encoding="utf-8")
    print(report.summary())
    print(f"wrote {out.name}/kept.jsonl, {out.name}/removed.jsonl and {out.name}/report.json")
    return 0
