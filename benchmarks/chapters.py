"""How long each chapter takes to run top to bottom, and which cells take the time.

    nice python benchmarks/chapters.py                      # every chapter
    nice python benchmarks/chapters.py 04 05 --out benchmarks/results/chapters.md

Each chapter's solution (solutions/NN-slug.md with its answers and hidden tests, as the tests run
it) is executed in a fresh kernel with nbclient, cell by cell, in a scratch copy of book/ (the
folder the release runs it in). For every chapter it reports the seconds, the three slowest
cells, and every cell that took more than 30 s without showing a progress bar (tqdm), against
the course's budget: 5 minutes on two idle cores, 10 for the chapters that train (05, 07, 08).
The load average before and after each chapter is printed beside it: on a shared machine, times
scale with it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from autograder.chapters import course_config, list_chapters, source_notebook  # noqa: E402

TRAINING_CHAPTERS = {"05", "07", "08"}
SLOW_CELL_S = 30.0
PROGRESS = re.compile(r"\d+%\|")  # what tqdm draws: " 45%|████▌     | 135/300 [...]"


def has_progress_bar(cell) -> bool:
    for output in cell.get("outputs", []):
        texts = [output.get("text", "")] + [str(v) for v in output.get("data", {}).values()]
        if any(PROGRESS.search(t) for t in texts):
            return True
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {}) and "tqdm" in str(output):
            return True
    return False


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith(("#", ":"))]
    return (lines[0][:60] + ("..." if len(lines[0]) > 60 else "")) if lines else "(empty)"


def run_chapter(chapter, timeout: int) -> dict:
    from nbclient import NotebookClient

    nb = source_notebook(chapter, course_config(ROOT))
    with tempfile.TemporaryDirectory(prefix="chapter-timing-") as tmp:
        book = Path(tmp) / "book"
        shutil.copytree(ROOT / "book", book)  # what the chapters read beside them, e.g. their images
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(book)}})
        load_before = load_average()
        cells, errors = [], []
        started = time.perf_counter()
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                client.execute_cell(cell, index)
                seconds = time.perf_counter() - t0
                cells.append({"index": index, "seconds": round(seconds, 2), "first_line": first_line(cell.source),
                              "progress_bar": has_progress_bar(cell)})
                errors += [f"cell {index}: {o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                           if o.get("output_type") == "error"]
        total = time.perf_counter() - started
    budget = 600 if chapter.slug[:2] in TRAINING_CHAPTERS else 300
    slow_without_bar = [c for c in cells if c["seconds"] > SLOW_CELL_S and not c["progress_bar"]]
    return {"chapter": chapter.slug, "seconds": round(total, 1), "budget_s": budget,
            "slowest": sorted(cells, key=lambda c: -c["seconds"])[:3], "slow_cells_without_progress_bar": slow_without_bar,
            "errors": errors, "load_before": load_before, "load_after": load_average(), "cells": cells}


def table(results: list[dict], threads_note: str) -> str:
    lines = ["| chapter | seconds | budget | slowest three cells (seconds) | cells > 30 s without a progress bar | load average before / after |",
             "| --- | ---: | ---: | --- | --- | --- |"]
    for r in results:
        slowest = "; ".join(f"`{c['first_line']}` {c['seconds']:.0f}" for c in r["slowest"])
        bare = ", ".join(f"cell {c['index']}" for c in r["slow_cells_without_progress_bar"]) or "none"
        flag = "" if r["seconds"] <= r["budget_s"] else " (over)"
        lines.append(f"| {r['chapter']} | {r['seconds']:.0f}{flag} | {r['budget_s']} | {slowest} | {bare} | "
                     f"{r['load_before']} / {r['load_after']} |")
    return "\n".join(lines) + f"\n\n{threads_note}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter numbers or slugs (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds a single cell may take (default 1800)")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here, and the details as JSON beside it; "
                                                 "rows of other chapters already in that JSON are kept, so chapters "
                                                 "can be measured one at a time")
    args = parser.parse_args()
    chapters = [c for c in list_chapters(ROOT)
                if not args.chapters or any(c.slug == a or c.slug.startswith(a.zfill(2) + "-") for a in args.chapters)]
    if not chapters:
        raise SystemExit(f"no chapter matches {args.chapters}")
    import os

    note = (f"Measured on {os.cpu_count()} CPU(s); each chapter sets its own PyTorch threads "
            "(buildgpt.threads.set_threads: one when the load average shows the cores busy). "
            "Times scale with the load average; the budget is for two idle cores.")
    results = []
    kept = []  # rows of chapters measured earlier, from --out's JSON
    if args.out and args.out.with_suffix(".json").is_file():
        slugs = {c.slug for c in chapters}
        kept = [r for r in json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8")) if r["chapter"] not in slugs]
    for chapter in chapters:
        print(f"{chapter.slug}: running (load average {load_average()}) ...", flush=True)
        result = run_chapter(chapter, args.timeout)
        results.append(result)
        print(f"{chapter.slug}: {result['seconds']:.0f} s; slowest "
              + ", ".join(f"cell {c['index']} {c['seconds']:.0f} s" for c in result["slowest"])
              + (f"; ERRORS {result['errors']}" if result["errors"] else ""), flush=True)
        if args.out:  # after every chapter, so a long run leaves what it measured
            rows = sorted(kept + results, key=lambda r: r["chapter"])
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(f"# Chapter run times (`python benchmarks/chapters.py`)\n\n{table(rows, note)}",
                                encoding="utf-8")
            args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("\n" + table(results, note))


if __name__ == "__main__":
    main()
